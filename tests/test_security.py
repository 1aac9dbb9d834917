"""Secrets stay out of the records, servers we start listen on this machine only, and the
deployment manifests carry no credentials."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml

from orchestrator import tune
from orchestrator.redaction import is_secret_name, redact_config
from search_algs import Float

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEY = "sk-live-0123456789"


@pytest.mark.parametrize("name, secret", [
    ("api_key", True), ("db.password", True), ("hfToken", True), ("aws/secret_access_key", True),
    ("AUTH_HEADER", True), ("key", True), ("credentials", True),
    ("keep_checkpoints", False), ("monkey", False), ("num_keys", False), ("tokenizer", False),
    ("max_tokens", False), ("author", False), ("keyboard", False), ("lr", False),
])
def test_secret_looking_names(name, secret):
    assert is_secret_name(name) is secret


def test_nested_configs_are_redacted_without_changing_the_original():
    config = {"x": 1, "data": {"bucket": "b", "access_key": "AKIA"}, "token": None}
    assert redact_config(config) == {"x": 1, "data": {"bucket": "b", "access_key": "***"}, "token": None}
    assert config["data"]["access_key"] == "AKIA"


def test_a_string_secret_in_the_space_is_refused_without_echoing_it(tmp_path):
    """Secrets go through ``secrets=[ENV_VAR]`` (tests/test_secrets.py proves none of their bytes
    is written anywhere); a credential-looking string in the config is refused before Ray starts."""
    from fault_trainables import needs_its_key
    from orchestrator.spec import SpecError

    with pytest.raises(SpecError, match="secrets") as refused:
        tune(needs_its_key, {"x": Float(0.0, 1.0), "api_key": KEY}, metric="loss", mode="min", num_samples=2,
             tracking_uri="", storage_path=str(tmp_path / "runs"), verbose=0)
    assert KEY not in str(refused.value)


def test_space_descriptions_and_trial_names_carry_no_secret_looking_value():
    from types import SimpleNamespace

    from orchestrator.redaction import redact_space_rows, trial_dirname, trial_name

    rows = [{"name": "api_key", "type": "categorical", "choices": [111, 222]},
            {"name": "db/password", "type": "categorical", "choices": [1]},
            {"name": "kind", "type": "categorical", "choices": ["a", "b"]},
            {"name": "auth_token", "type": "float", "low": 0.0, "high": 1.0, "log": False, "step": None}]
    assert redact_space_rows(rows) == [
        {"name": "api_key", "type": "categorical", "choices": ["***", "***"]},
        {"name": "db/password", "type": "categorical", "choices": ["***"]},
        rows[2], rows[3]]
    assert rows[0]["choices"] == [111, 222]  # the original is left alone
    trial = SimpleNamespace(trainable_name="train_x", trial_id="ab12cd34_00001",
                            config={"api_key": 111}, experiment_tag="1_api_key=111")
    assert trial_name(trial) == trial_dirname(trial) == "train_x_ab12cd34_00001"


def test_a_ray_we_start_serves_its_dashboard_on_localhost_only(tmp_path):
    script = ("import ray; from orchestrator import cluster; cluster.connect(None); "
              "print('DASHBOARD', ray._private.worker.global_worker.node.address_info.get('webui_url')); "
              "ray.shutdown()")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "RAY_ADDRESS": ""}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("DASHBOARD")]
    assert line, out.stderr[-3000:]
    assert line[0].split()[1].startswith("127.0.0.1:")


def _env_entries(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from value
            else:
                yield from _env_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _env_entries(item)


def test_manifests_take_credentials_from_secrets_only():
    manifests = sorted((ROOT / "deploy").rglob("*.yaml"))
    assert manifests
    for path in manifests:
        for document in yaml.safe_load_all(path.read_text()):
            for entry in _env_entries(document):
                if is_secret_name(entry.get("name", "")):
                    assert "value" not in entry, f"{path}: env {entry['name']} holds a literal credential"
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{path}: {entry['name']}"
    text = "\n".join(p.read_text() for p in manifests)
    for literal in ("AKIA", "sk-", "ghp_", "BEGIN RSA PRIVATE KEY", "BEGIN OPENSSH PRIVATE KEY"):
        assert literal not in text
