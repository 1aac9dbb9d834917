"""Resume unpickles Ray's state files only when this installation wrote them.

``Tuner.restore`` unpickles files of the experiment folder: ``tuner.pkl``, the cloudpickled
fields of ``experiment_state-*.json``, the search generator's ``search_gen_state-*.json`` and the
searcher's ``searcher-state-*.pkl``. A crafted file there runs any code, and an experiment folder
is data (copied, shared, synced from buckets). So each of those files is sealed when it is
written: an HMAC-SHA256 of its bytes under a key that lives *outside* the folder
(``~/.tuneorch/state.key``, made on first use, readable by its owner only; or the hex key in
``$TUNEORCH_STATE_KEY``, to resume on another machine), recorded in
``<experiment>/tuneorch-seal.json``. :func:`verify` runs before ``Tuner.restore`` and refuses
any such file Tune would read (the newest of each kind) whose seal is missing or wrong, naming it,
before a byte of it is unpickled.

When files are sealed: ``tuner.pkl`` right after the Tuner writes it; the snapshot files at
every experiment snapshot, by :class:`StateSealer`, a Tune callback. Tune's snapshot writes the
trials, the search generator and the searcher into its driver staging folder, then asks the
callbacks for their state, then copies the folder into the experiment folder file by file. The
callback seals the staged files at that moment and writes the seal both into the staging folder
and, for a local experiment, straight into the experiment folder, before the copy starts. Each
file keeps its last :data:`KEEP` digests, so a driver killed halfway through a copy (files of two
snapshots side by side) still resumes. The callback returns no state of its own, and resume
moves any ``callback-states-*.pkl`` aside: our callbacks are rebuilt at resume, not unpickled.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import os
import secrets
from typing import Any

from ray.tune import Callback

from orchestrator.faults import ResumeError

logger = logging.getLogger(__name__)

SEAL_FILE = "tuneorch-seal.json"
KEY_ENV = "TUNEORCH_STATE_KEY"
KEY_FILE = "~/.tuneorch/state.key"
#: The files of an experiment folder that Tune unpickles on restore.
SEALED = ("tuner.pkl", "experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl")
#: Callback state: never needed by a resume (tuneorch rebuilds its callbacks), so never read.
UNUSED_PICKLES = ("callback-states-*.pkl",)
KEEP = 4


def _key() -> bytes:
    raw = os.environ.get(KEY_ENV, "").strip()
    if raw:
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ResumeError(f"{KEY_ENV}: must be a hex key of at least 32 hex digits (16 bytes), got "
                              f"{len(raw)} characters; copy it from ~/.tuneorch/state.key of the machine "
                              f"that ran the experiment")
        return key
    path = os.path.expanduser(KEY_FILE)
    try:
        with open(path, encoding="ascii") as f:
            return bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = secrets.token_bytes(32)
    try:  # O_EXCL: two drivers starting at once agree on the first key written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as f:
            return bytes.fromhex(f.read().strip())
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def _digest(key: bytes, path: str) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            mac.update(block)
    return mac.hexdigest()


def _sealed_names(folder: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in SEALED)
                  and os.path.isfile(os.path.join(folder, n)))


def _read_on_restore(folder: str) -> list[str]:
    """The state files of ``folder`` that ``Tuner.restore`` unpickles: of each kind, the one whose
    name sorts last (Ray 2.60 picks ``max()`` of the names for the trials, the search generator
    and the searcher). Older sessions' files are never read; a driver killed while Tune copied
    them leaves them cut off, and that must not stop a resume."""
    names = _sealed_names(folder)
    return sorted({max(matching) for pattern in SEALED
                   if (matching := [n for n in names if fnmatch.fnmatchcase(n, pattern)])})


def _read_seal(folder: str) -> dict[str, list[str]]:
    try:
        with open(os.path.join(folder, SEAL_FILE), encoding="utf-8") as f:
            files = json.load(f).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: [d for d in v if isinstance(d, str)] for k, v in files.items() if isinstance(v, list)}


def _write_seal(folder: str, files: dict[str, list[str]]) -> None:
    tmp = os.path.join(folder, f".{SEAL_FILE}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"format": 1, "hmac": "sha256", "files": files}, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(folder, SEAL_FILE))


def seal(source: str, targets: list[str] | None = None, names: list[str] | None = None) -> None:
    """Seal the state files in local folder ``source`` (or only ``names``), recording the digests in
    the seal file of ``source`` and of each local folder in ``targets``."""
    key = _key()
    names = names if names is not None else _sealed_names(source)
    digests = {n: _digest(key, os.path.join(source, n)) for n in names if os.path.isfile(os.path.join(source, n))}
    folders = [f for f in [source, *(targets or [])] if os.path.isdir(f)]
    # One merged seal for all: Tune's copy of the staging folder overwrites the experiment
    # folder's seal file, which must keep what only it held (tuner.pkl's digest).
    files: dict[str, list[str]] = {}
    for folder in folders:
        for name, old in _read_seal(folder).items():
            files[name] = list(dict.fromkeys(files.get(name, []) + old))[:KEEP]
    for name, digest in digests.items():
        files[name] = [digest] + [d for d in files.get(name, []) if d != digest][:KEEP - 1]
    for folder in folders:
        _write_seal(folder, files)


def sealed(folder: str, seal_folder: str | None = None) -> bool:
    """Whether every state file in ``folder`` that a restore reads carries a valid seal, recorded in the seal file of
    ``folder`` or of ``seal_folder`` (Tune's staging copy is checked against the experiment's)."""
    key = _key()
    files = _read_seal(folder)
    for name, digests in (_read_seal(seal_folder) if seal_folder else {}).items():
        files[name] = files.get(name, []) + digests
    return all(_digest(key, os.path.join(folder, name)) in files.get(name, []) for name in _read_on_restore(folder))


def verify(experiment_path: str) -> None:
    """Raise :class:`ResumeError` unless every state file that Tune would unpickle (the newest of
    each kind) carries a valid seal, recorded in the experiment's seal file or in a seal file of
    Tune's staging copies; move unused callback pickles aside. Local experiment folders only: a
    remote one is checked by the same code once Tune has copied it (not yet: see the README)."""
    if "://" in experiment_path and not experiment_path.startswith("file://"):
        return
    from orchestrator.faults import staging_folders

    folder = experiment_path.removeprefix("file://")
    key = _key()
    # Digests from Tune's staging folders count too. Tune's upload copies the staging seal file
    # into the experiment folder from a background thread, and a copy that started before the
    # next snapshot's seal can land after it, leaving the folder's seal one snapshot behind its
    # files (seen in the kill test). A digest is an HMAC under the key, wherever it is recorded,
    # so taking it from there admits no file the key did not seal.
    files = _read_seal(folder)
    for staging in staging_folders(experiment_path):
        for name, digests in _read_seal(staging).items():
            files[name] = files.get(name, []) + digests
    for name in _read_on_restore(folder):
        if _digest(key, os.path.join(folder, name)) not in files.get(name, []):
            raise ResumeError(
                f"resume: {os.path.join(folder, name)} carries no valid seal of this machine's "
                f"tuneorch key ({KEY_FILE}): it was not written by a tuneorch run here, or was changed "
                f"since. Resume would unpickle it, and a pickle can run any code, so it stops here. If "
                f"the experiment ran on another machine, set {KEY_ENV} to the hex key in that "
                f"machine's {KEY_FILE} and resume again"
            )
    for name in os.listdir(folder):
        if any(fnmatch.fnmatchcase(name, p) for p in UNUSED_PICKLES):
            os.replace(os.path.join(folder, name), os.path.join(folder, f"{name}.unused"))


class StateSealer(Callback):
    """Seals each experiment snapshot of ``experiment_path`` as Tune writes it (see the module
    docstring)."""

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self._folders: tuple[str, str | None] | None = None

    def __getstate__(self) -> dict:
        return {"experiment_path": self.experiment_path, "_folders": None}

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._folders is None and trials:
            self._folders = _folders_of(trials[0])

    def get_state(self) -> dict | None:
        # Tune calls this during a snapshot, after writing the trials and the search state into
        # the staging folder and before copying that folder into the experiment folder.
        folders = self._folders or self._folders_before_any_trial()
        if folders is not None:
            staging, experiment = folders
            try:
                seal(staging, [experiment] if experiment else [])
            except OSError as exc:  # a full disk must not stop the run; resume will say so
                logger.warning("could not seal the experiment snapshot (%s); a resume from it will "
                               "be refused", exc)
        return None  # no callback pickle

    def _folders_before_any_trial(self) -> tuple[str, str | None] | None:
        """The first snapshot comes in the step that adds the first trials, before this callback
        has seen one: the newest staging folder of this experiment in Ray's session folders."""
        from orchestrator.faults import staging_folders

        if "://" in self.experiment_path and not self.experiment_path.startswith("file://"):
            return None
        found = staging_folders(self.experiment_path)
        return (found[-1], self.experiment_path.removeprefix("file://")) if found else None


def _folders_of(trial: Any) -> tuple[str, str | None] | None:
    from schedulers._ray_private import experiment_folder, experiment_staging_dir

    staging = experiment_staging_dir(trial)
    if not staging:
        return None
    return staging, experiment_folder(trial)
