"""Resume unpickles nothing of an experiment folder that this installation did not seal."""

from __future__ import annotations

import os
import pickle

import pytest

import orchestrator
from orchestrator import state_seal
from orchestrator.faults import ResumeError
from search_algs import Float


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    """A key of this test's own (the user's ~/.tuneorch is left alone)."""
    monkeypatch.setenv(state_seal.KEY_ENV, os.urandom(32).hex())


class _Payload:
    """A pickle that creates ``marker`` when it is loaded: what an attacker would plant."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_sealed_files_pass_and_changed_ones_are_named(tmp_path, own_key):
    (tmp_path / "tuner.pkl").write_bytes(b"state")
    (tmp_path / "experiment_state-1.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a state file: never sealed, never checked")
    state_seal.seal(str(tmp_path))
    state_seal.verify(str(tmp_path))

    (tmp_path / "experiment_state-1.json").write_text('{"changed": 1}')
    with pytest.raises(ResumeError, match="experiment_state-1.json carries no valid seal"):
        state_seal.verify(str(tmp_path))


def test_a_file_of_the_previous_snapshot_still_passes(tmp_path, own_key):
    """A driver killed while Tune copied a snapshot leaves files of two snapshots side by side."""
    state = tmp_path / "searcher-state-1.pkl"
    state.write_bytes(b"snapshot 1")
    state_seal.seal(str(tmp_path))
    state.write_bytes(b"snapshot 2")
    state_seal.seal(str(tmp_path))
    state.write_bytes(b"snapshot 1")
    state_seal.verify(str(tmp_path))


def test_a_cut_off_file_of_an_older_session_does_not_stop_a_resume(tmp_path, own_key):
    """Tune copies the older sessions' snapshot files too at each upload, so a kill can cut one
    of them; Tune reads only the newest of each kind, and only those are checked. A planted file
    whose name sorts last is what Tune would read, so it is checked."""
    for session in ("2026-01-01_10-00-00", "2026-01-01_11-00-00"):
        (tmp_path / f"search_gen_state-{session}.json").write_bytes(pickle.dumps({"counter": 1}))
        (tmp_path / f"experiment_state-{session}.json").write_text("{}")
    state_seal.seal(str(tmp_path))
    (tmp_path / "search_gen_state-2026-01-01_10-00-00.json").write_bytes(b"")  # the cut copy
    state_seal.verify(str(tmp_path))
    assert state_seal.sealed(str(tmp_path))

    (tmp_path / "search_gen_state-2026-01-01_12-00-00.json").write_bytes(pickle.dumps({"counter": 9}))
    with pytest.raises(ResumeError, match="search_gen_state-2026-01-01_12-00-00.json carries no valid seal"):
        state_seal.verify(str(tmp_path))
    assert not state_seal.sealed(str(tmp_path))


def test_a_seal_left_behind_by_tunes_copy_is_completed_from_the_staging_folder(tmp_path, own_key, monkeypatch):
    """Tune's upload can copy an older staging seal over the experiment folder's newer one; the
    staging folder still holds the digest, and it counts (it is an HMAC under the key)."""
    experiment = tmp_path / "runs" / "exp"
    staging = tmp_path / "ray" / "session_1" / "artifacts" / "2026" / "exp" / "driver_artifacts"
    experiment.mkdir(parents=True)
    staging.mkdir(parents=True)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))
    (staging / "experiment_state-1.json").write_text('{"snapshot": 1}')
    state_seal.seal(str(staging), [str(experiment)])
    behind = (experiment / state_seal.SEAL_FILE).read_bytes()
    (staging / "experiment_state-1.json").write_text('{"snapshot": 2}')
    state_seal.seal(str(staging), [str(experiment)])
    (experiment / state_seal.SEAL_FILE).write_bytes(behind)  # the late copy of the older seal
    (experiment / "experiment_state-1.json").write_text('{"snapshot": 2}')
    state_seal.verify(str(experiment))

    (experiment / "experiment_state-1.json").write_text('{"snapshot": 3}')  # sealed nowhere
    with pytest.raises(ResumeError, match="experiment_state-1.json carries no valid seal"):
        state_seal.verify(str(experiment))


def test_another_key_does_not_pass(tmp_path, monkeypatch):
    monkeypatch.setenv(state_seal.KEY_ENV, "11" * 32)
    (tmp_path / "tuner.pkl").write_bytes(b"state")
    state_seal.seal(str(tmp_path))
    monkeypatch.setenv(state_seal.KEY_ENV, "22" * 32)
    with pytest.raises(ResumeError, match=state_seal.KEY_ENV):
        state_seal.verify(str(tmp_path))


def test_a_short_key_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(state_seal.KEY_ENV, "abc")
    with pytest.raises(ResumeError, match="at least 32 hex digits"):
        state_seal.seal(str(tmp_path))


def test_the_key_file_is_made_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv(state_seal.KEY_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    first = state_seal._key()
    path = tmp_path / ".tuneorch" / "state.key"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert state_seal._key() == first and len(first) == 32


@pytest.mark.slow
def test_resume_refuses_a_planted_pickle_without_loading_it(ray_local, tmp_path, own_key):
    result = orchestrator.tune("test_api:quadratic", {"x": Float(0.0, 1.0)}, metric="loss", mode="min",
                               num_samples=2, tracking_uri="", storage_path=str(tmp_path / "runs"),
                               name="sealed", verbose=0)
    folder = result.experiment_path
    seal = (tmp_path / "runs" / os.path.basename(folder) / state_seal.SEAL_FILE).read_text()
    assert "tuner.pkl" in seal and "experiment_state-" in seal  # the run sealed both kinds

    state_seal.verify(folder)  # the run's own files pass
    marker = tmp_path / "pwned"
    with open(os.path.join(folder, "tuner.pkl"), "wb") as f:
        pickle.dump(_Payload(marker), f)
    with pytest.raises(ResumeError, match="tuner.pkl carries no valid seal"):
        orchestrator.resume(folder, verbose=0)
    assert not marker.exists()
