"""The deployment files under deploy/, checked offline.

- deploy/cluster/*.yaml: Ray's own cluster-launcher preparation and schema
  (``prepare_config`` + ``validate_config``, what ``ray up`` runs first), plus what tuneorch
  needs of them: the repository mounted and installed on every node, node resources declared.
- deploy/cluster/submit_driver.py: run alone, as ``ray submit`` runs it on the head.
"""

from __future__ import annotations

import copy
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CLUSTER_YAMLS = sorted((DEPLOY / "cluster").glob("*.yaml"))


def _ray_version() -> str:
    import ray

    return ray.__version__


# ----- cluster launcher ---------------------------------------------------------------------

def _prepared(path: pathlib.Path) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(path.read_text())
    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)
    return prepared


def test_the_three_cluster_yamls_exist():
    assert {p.name for p in CLUSTER_YAMLS} >= {"aws-gpu.yaml", "gcp-gpu.yaml", "local.yaml"}


@pytest.mark.parametrize("path", CLUSTER_YAMLS, ids=lambda p: p.name)
def test_cluster_yaml_passes_rays_own_validation(path):
    prepared = _prepared(path)
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("path", CLUSTER_YAMLS, ids=lambda p: p.name)
def test_cluster_yaml_installs_the_repository_on_every_node(path):
    prepared = _prepared(path)
    mounts = prepared["file_mounts"]
    assert mounts.get("~/tuneorch") == ".", mounts  # `ray up` from the repository root
    # setup_commands are merged into head_ and worker_setup_commands by prepare_config
    for key in ("head_setup_commands", "worker_setup_commands"):
        commands = " ; ".join(prepared[key])
        assert "pip install" in commands and "-e ~/tuneorch" in commands, (key, commands)
    assert ".gitignore" in prepared["rsync_filter"]  # no .venv or runs/ shipped to the nodes
    assert any("--autoscaling-config=~/ray_bootstrap_config.yaml" in c for c in prepared["head_start_ray_commands"])


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "gcp-gpu.yaml"])
def test_cloud_node_types_declare_resources_and_gpu_workers(name):
    prepared = _prepared(DEPLOY / "cluster" / name)
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and not head["resources"].get("GPU")  # driver only
    workers = {k: v for k, v in types.items() if k != prepared["head_node_type"]}
    assert all(v["resources"].get("CPU", 0) > 0 for v in workers.values())
    gpu_types = [v for v in workers.values() if v["resources"].get("GPU", 0) >= 1]
    assert gpu_types and all(v["max_workers"] >= 1 for v in gpu_types)
    # the image carries the Ray version the package pins
    assert prepared["docker"]["image"] == f"rayproject/ray:{_ray_version()}-py311-gpu"
    assert sum(v["min_workers"] for v in workers.values()) <= prepared["max_workers"]


def test_cluster_validation_is_not_vacuous():
    """The same check refuses a broken variant: an unknown key, a fractional resource."""
    import jsonschema

    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((DEPLOY / "cluster" / "aws-gpu.yaml").read_text())
    typo = copy.deepcopy(raw)
    typo["available_node_types"]["gpu-1x-a10g"]["resource"] = typo["available_node_types"]["gpu-1x-a10g"].pop("resources")
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(typo))
    fractional = copy.deepcopy(raw)
    fractional["available_node_types"]["gpu-1x-a10g"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(fractional))


def test_tuneorch_reads_the_node_types_the_cluster_yaml_declares():
    from orchestrator.cluster import node_types_from_cluster_config

    types = {t["name"]: t for t in node_types_from_cluster_config(_prepared(DEPLOY / "cluster" / "aws-gpu.yaml"))}
    assert "head" not in types
    assert types["gpu-4x-a10g"]["resources"] == {"CPU": 48, "GPU": 4} and types["gpu-4x-a10g"]["max_workers"] == 2


# ----- submit_driver.py -------------------------------------------------------------------

def _driver_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("submit_driver", DEPLOY / "cluster" / "submit_driver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_submit_driver_builds_a_tuneorch_run_that_joins_the_cluster(monkeypatch, tmp_path):
    driver = _driver_module()
    monkeypatch.setenv(driver.REPO_ENV, str(ROOT))
    monkeypatch.chdir(tmp_path)  # ray submit runs the script from the home directory
    workdir, command = driver.build_command(["examples/digits_mlp.yaml", "--set", "num_samples=2", "--quiet"])
    assert workdir == str(ROOT)
    assert command == ["run", str(ROOT / "examples" / "digits_mlp.yaml"), "--set", "address=auto",
                       "--set", "num_samples=2", "--quiet"]
    _, command = driver.build_command(["examples/digits_mlp.yaml", "--address", "ray://head:10001"])
    assert command[2:4] == ["--set", "address=ray://head:10001"]
    with pytest.raises(SystemExit, match="not found"):
        driver.build_command(["examples/missing.yaml"])


def test_submit_driver_runs_alone_from_the_home_directory(tmp_path):
    """As `ray submit` does: the one file copied to ~ and run with `python ~/submit_driver.py ARGS`."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "cluster" / "submit_driver.py", home / "submit_driver.py")
    env = dict(os.environ, HOME=str(home), TUNEORCH_HOME=str(ROOT))
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, str(home / "submit_driver.py"), "examples/digits_mlp.yaml", "--validate",
         "--set", "storage_path=s3://bucket/tuneorch", "--set", "tracking_uri=http://mlflow:5000"],
        cwd=home, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout and "--set address=auto" in done.stdout
