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


# ----- KubeRay manifests (deploy/kuberay) -------------------------------------------------------
#
# RayJob/RayCluster are validated against the CRD schemas of KubeRay v1.7.0, read from
# ../shared/kuberay-crds (or $KUBERAY_CRDS_DIR), the way the API server would: OpenAPI v3
# turned into JSON Schema with unknown fields rejected, then the checks of the operator's
# validation.go that the CRD does not hold.

import functools  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402

KUBERAY = DEPLOY / "kuberay"
KUBERAY_MANIFESTS = sorted(p for p in KUBERAY.rglob("*.yaml") if p.name not in ("kustomization.yaml", "experiment.yaml"))
KUSTOMIZATIONS = sorted(KUBERAY.rglob("kustomization.yaml"))
OVERLAYS = ["rayjob", "raycluster"]


def _crd_dir() -> pathlib.Path:
    candidates = [os.environ.get("KUBERAY_CRDS_DIR"), str(ROOT.parent / "shared" / "kuberay-crds")]
    for candidate in filter(None, candidates):
        if (pathlib.Path(candidate) / "ray.io_rayjobs.yaml").is_file():
            return pathlib.Path(candidate)
    pytest.skip(f"KubeRay CRDs not found (looked in {[c for c in candidates if c]}); "
                f"set KUBERAY_CRDS_DIR to the folder holding ray.io_rayjobs.yaml")


def _docs(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _kind(kind: str) -> list[tuple[pathlib.Path, dict]]:
    return [(p, d) for p in KUBERAY_MANIFESTS for d in _docs(p) if d.get("kind") == kind]


def openapi_to_jsonschema(node):
    """A CRD's structural OpenAPI v3 schema as strict JSON Schema (what the API server enforces)."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = openapi_to_jsonschema(value)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "default", "description"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if "required" in out:  # a field with a default is filled in, not missing
        props = node.get("properties", {})
        out["required"] = [r for r in out["required"] if "default" not in props.get(r, {})]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _walk(instance, schema, path="$"):
    """(instance, schema, path) for every node of the instance the schema describes."""
    yield instance, schema, path
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _walk(value, sub, f"{path}.{key}")
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(instance):
            yield from _walk(value, schema["items"], f"{path}[{i}]")


def _prune_nulls(instance, schema):
    """The API server drops null values of fields that are not nullable."""
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        return {k: _prune_nulls(v, props.get(k, extra)) for k, v in instance.items()
                if v is not None or props.get(k, extra).get("nullable")}
    if isinstance(instance, list):
        return [_prune_nulls(v, schema.get("items", {})) for v in instance]
    return instance


@functools.lru_cache(maxsize=None)
def _crd(crd_file: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are large: the C loader is ~10x faster
    return yaml.load((_crd_dir() / crd_file).read_text(), Loader=loader)


def crd_errors(manifest: dict, crd_file: str) -> list[str]:
    """Every way ``manifest`` breaks the CRD of ``crd_file`` and the operator's own checks."""
    import jsonschema

    crd = _crd(crd_file)
    assert crd["spec"]["names"]["kind"] == manifest["kind"]
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    openapi = version["schema"]["openAPIV3Schema"]
    manifest = _prune_nulls(manifest, openapi)
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
              for e in jsonschema.Draft7Validator(openapi_to_jsonschema(openapi)).iter_errors(manifest)]
    if manifest.get("apiVersion") != f"{crd['spec']['group']}/v1":
        errors.append(f"apiVersion: {manifest.get('apiVersion')!r}, expected {crd['spec']['group']}/v1")
    for node, schema, path in _walk(manifest, openapi):
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(node, list):
            keys = schema.get("x-kubernetes-list-map-keys", [])
            item_props = schema.get("items", {}).get("properties", {})
            seen = [tuple(item.get(k, item_props.get(k, {}).get("default")) for k in keys) for item in node]
            if len(seen) != len(set(seen)):
                errors.append(f"{path}: duplicate list-map keys {keys}: {seen}")
        for rule in schema.get("x-kubernetes-validations", []):
            if "oldSelf" not in rule["rule"]:  # rules on oldSelf apply to updates only
                errors.append(f"{path}: CEL rule {rule['rule']!r} applies and is not evaluated here")
    errors += operator_errors(manifest)
    return errors


_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def operator_errors(manifest: dict) -> list[str]:
    """The checks of KubeRay's validation.go that its CRDs do not hold."""
    errors = []
    kind, name, spec = manifest["kind"], manifest["metadata"].get("name", ""), manifest.get("spec", {})
    limit = {"RayCluster": 53, "RayJob": 47, "RayService": 47}[kind]
    if not _DNS1035.fullmatch(name) or len(name) > limit:
        errors.append(f"metadata.name {name!r}: must be a DNS-1035 label of at most {limit} characters")
    if kind == "RayJob":
        if spec.get("ttlSecondsAfterFinished", 0) > 0 and not spec.get("shutdownAfterJobFinishes"):
            errors.append("ttlSecondsAfterFinished > 0 needs shutdownAfterJobFinishes: true")
        if spec.get("submissionMode", "K8sJobMode") not in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"):
            errors.append(f"submissionMode {spec['submissionMode']!r} is not a known mode")
        if ("rayClusterSpec" in spec) == bool(spec.get("clusterSelector")):
            errors.append("exactly one of rayClusterSpec and clusterSelector must be set")
        if "runtimeEnvYAML" in spec:
            try:
                yaml.safe_load(spec["runtimeEnvYAML"])
            except yaml.YAMLError as exc:
                errors.append(f"runtimeEnvYAML does not parse: {exc}")
        cluster = spec.get("rayClusterSpec", {})
    else:
        cluster = spec
    groups = cluster.get("workerGroupSpecs", [])
    names = [g.get("groupName") for g in groups]
    if len(names) != len(set(names)):
        errors.append(f"groupName values must be unique, got {names}")
    for group in groups:
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        if low > high:
            errors.append(f"group {group.get('groupName')}: minReplicas {low} > maxReplicas {high}")
        if "replicas" in group and not low <= group["replicas"] <= high:
            errors.append(f"group {group.get('groupName')}: replicas outside [minReplicas, maxReplicas]")
    for params in [cluster.get("headGroupSpec", {}).get("rayStartParams", {})] + [g.get("rayStartParams", {}) for g in groups]:
        errors += [f"rayStartParams.{k}: {v!r} is not a string" for k, v in params.items() if not isinstance(v, str)]
    return errors


def _ray_clusters() -> list[tuple[str, dict, dict]]:
    """(label, manifest, its Ray cluster spec) of every RayJob and RayCluster under deploy/kuberay."""
    out = [(f"{p.parent.name}/{d['metadata']['name']}", d, d["spec"]["rayClusterSpec"]) for p, d in _kind("RayJob")]
    out += [(f"{p.parent.name}/{d['metadata']['name']}", d, d["spec"]) for p, d in _kind("RayCluster")]
    return out


def _containers(cluster: dict):
    yield "head", cluster["headGroupSpec"]["template"]["spec"]["containers"]
    for group in cluster.get("workerGroupSpecs", []):
        yield group["groupName"], group["template"]["spec"]["containers"]


def _quantity(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_every_kuberay_manifest_parses_and_names_itself():
    assert KUBERAY_MANIFESTS
    for path in KUBERAY_MANIFESTS:
        docs = _docs(path)
        assert docs, path
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), path
    assert {k for _, d in [(p, d) for p in KUBERAY_MANIFESTS for d in _docs(p)] for k in [d["kind"]]} >= {
        "RayJob", "RayCluster", "Deployment", "StatefulSet", "Service", "NetworkPolicy", "Namespace"}
    assert not _kind("Secret"), "Secrets are created by hand (README), never kept in deploy/"


@pytest.mark.parametrize("kind,crd_file", [("RayJob", "ray.io_rayjobs.yaml"), ("RayCluster", "ray.io_rayclusters.yaml")])
def test_ray_manifests_validate_against_the_kuberay_crd(kind, crd_file):
    found = _kind(kind)
    assert found, f"no {kind} under deploy/kuberay"
    for path, manifest in found:
        assert crd_errors(manifest, crd_file) == [], path


def test_crd_validation_is_not_vacuous():
    (_, job), = _kind("RayJob")
    broken = copy.deepcopy(job)
    group = broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    group["maxReplica"] = group.pop("maxReplicas")  # typo: unknown field, and a required one missing
    broken["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-gpus"] = 0  # not a string
    broken["spec"]["shutdownAfterJobFinishes"] = False
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"].append(copy.deepcopy(group))
    container = broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]
    container["resource"] = container.pop("resources")  # deep inside the pod template
    head = broken["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["resources"]["limits"]["cpu"] = "2 cores"  # not a Kubernetes quantity
    errors = "\n".join(crd_errors(broken, "ray.io_rayjobs.yaml"))
    assert "'maxReplica' was unexpected" in errors and "'resource' was unexpected" in errors
    assert "'2 cores' does not match" in errors
    assert "num-gpus" in errors
    assert "needs shutdownAfterJobFinishes" in errors and "groupName values must be unique" in errors


@pytest.mark.parametrize("label", [c[0] for c in _ray_clusters()])
def test_ray_cluster_shape(label):
    import ray

    _, manifest, cluster = next(c for c in _ray_clusters() if c[0] == label)
    version = ray.__version__
    assert cluster["rayVersion"] == version
    # head: the driver only, no GPU
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"].get("num-gpus") == "0"
    assert all("nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}) for c in head["template"]["spec"]["containers"])
    # autoscaling from zero, CPU and GPU groups
    assert cluster["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    gpu_groups = [g for g in groups.values()
                  if any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in g["template"]["spec"]["containers"])]
    assert gpu_groups and len(gpu_groups) < len(groups), "want a GPU group and a CPU-only group"
    for group in gpu_groups:
        for c in group["template"]["spec"]["containers"]:
            limits, requests = c["resources"]["limits"], c["resources"].get("requests", {})
            assert int(limits["nvidia.com/gpu"]) >= 1
            assert requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"]) == limits["nvidia.com/gpu"]
    for group in groups.values():
        assert group["minReplicas"] == 0 < group["maxReplicas"]
    # every Ray container runs the tuneorch image built on this Ray version
    for _, containers in _containers(cluster):
        for c in containers:
            assert re.fullmatch(rf"tuneorch:[\w.]+-ray{re.escape(version)}-py311-gpu", c["image"]), c["image"]
    # tuneorch's view of what the autoscaler can add is the worker groups themselves
    env = {e["name"]: e.get("value") for e in head["template"]["spec"]["containers"][0].get("env", [])}
    declared = json.loads(env["TUNEORCH_NODE_TYPES"])
    actual = {}
    for name, group in groups.items():
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        resources = {"CPU": _quantity(limits["cpu"])}
        if "nvidia.com/gpu" in limits:
            resources["GPU"] = float(limits["nvidia.com/gpu"])
        actual[name] = {"resources": resources, "max_workers": group["maxReplicas"]}
    assert declared == actual


def _entrypoint_argv(entrypoint: str, head_env: dict, tmp_path: pathlib.Path) -> list[str]:
    """The argv ``tuneorch`` gets from a RayJob ``entrypoint``, through real shells as KubeRay and
    Ray run it: the submitter pod's bash runs ``ray job submit ... -- <entrypoint>`` (the string
    pasted in, KubeRay's GetK8sJobCommand), ``ray job submit`` sends ``shlex.join`` of the words
    after ``--`` (ray/dashboard/modules/job/cli.py), and the head runs that with a shell (the job
    supervisor's ``shell=True``) in its own environment (the Secret's variables)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    out = tmp_path / "argv.json"
    fake_ray = bin_dir / "ray"
    fake_ray.write_text(f"""#!{sys.executable}
import json, os, shlex, subprocess, sys
words = sys.argv[sys.argv.index("--") + 1:]
env = dict(os.environ, **json.loads(os.environ["HEAD_ENV"]))
sys.exit(subprocess.run(shlex.join(words), shell=True, env=env).returncode)
""")
    fake_tuneorch = bin_dir / "tuneorch"
    fake_tuneorch.write_text(f"""#!{sys.executable}
import json, sys
open({str(out)!r}, "w").write(json.dumps(sys.argv[1:]))
""")
    for script in (fake_ray, fake_tuneorch):
        script.chmod(0o755)
    submitter_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HEAD_ENV": json.dumps(head_env)}
    command = f"ray job submit --address http://head:8265 --submission-id job-1 -- {entrypoint}"
    done = subprocess.run(["/bin/bash", "-c", command], env=submitter_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_rayjob_runs_the_configmap_spec_and_cleans_up(tmp_path):
    (_, job), = _kind("RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["rayClusterSpec"]["authOptions"]["mode"] == "token"
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == "experiment")
    volume = next(v for v in head["volumes"] if v["name"] == "experiment")
    base = yaml.safe_load((KUBERAY / "base" / "kustomization.yaml").read_text())
    generator = next(g for g in base["configMapGenerator"] if g["name"] == volume["configMap"]["name"])
    assert base["generatorOptions"]["disableNameSuffixHash"] is True  # referenced from a custom resource
    (spec_file,) = generator["files"]
    # The bucket is the Secret's, expanded on the head only (the submitter pod does not have it).
    argv = _entrypoint_argv(spec["entrypoint"], {"S3_BUCKET": "bucket-of-the-secret"}, tmp_path)
    assert argv[:2] == ["run", f"{mount['mountPath']}/{spec_file}"], argv
    assert "storage_path=s3://bucket-of-the-secret/tuneorch" in argv, argv
    # every Ray container gets that Secret as its environment
    for _, containers in _containers(spec["rayClusterSpec"]):
        for c in containers:
            assert {"secretRef": {"name": "tuneorch-s3"}} in c.get("envFrom", []), c["name"]


def test_the_configmap_spec_is_valid_and_uses_shared_storage_and_the_mlflow_service(tmp_path):
    from orchestrator.cli import _parser
    from orchestrator.spec import ExperimentSpec

    (_, job), = _kind("RayJob")
    args = _parser().parse_args(_entrypoint_argv(job["spec"]["entrypoint"], {"S3_BUCKET": "b"}, tmp_path))
    spec = ExperimentSpec.from_yaml(str(KUBERAY / "base" / "experiment.yaml"), args.overrides)
    assert spec.storage_path == "s3://b/tuneorch"
    assert "s3://" not in (KUBERAY / "base" / "experiment.yaml").read_text().split("\nname:")[1]  # no bucket in the file
    assert spec.resources["gpu"] > 0 and spec.address is None
    assert spec.register_model  # the best model lands in the registry, as in the main job
    service = next(d for _, d in _kind("Service") if d["metadata"]["name"] == "mlflow")
    port = service["spec"]["ports"][0]["port"]
    assert spec.tracking_uri == f"http://{service['metadata']['name']}:{port}"


def test_mlflow_server_runs_on_postgresql_with_s3_artifacts_on_its_own_image():
    (_, deployment), = _kind("Deployment")
    (_, statefulset), = _kind("StatefulSet")
    services = {d["metadata"]["name"]: d for _, d in _kind("Service")}
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    args = dict(a.removeprefix("--").split("=", 1) if "=" in a else (a.removeprefix("--"), True) for a in container["args"])
    env = {e["name"]: e for e in container["env"]}
    assert container["command"] == ["mlflow", "server"]
    assert container["image"].split(":")[0] == "tuneorch-mlflow"  # not the multi-GB training image
    assert "mlflow" in args["allowed-hosts"].split(",")
    # artifacts: proxied to the Secret's bucket
    assert args["serve-artifacts"] is True and args["artifacts-destination"] == "s3://$(S3_BUCKET)/mlflow-artifacts"
    assert env["S3_BUCKET"]["valueFrom"]["secretKeyRef"] == {"name": "tuneorch-s3", "key": "S3_BUCKET"}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["valueFrom"]["secretKeyRef"]["key"] == "AWS_ENDPOINT_URL"
    # runs and registry: PostgreSQL of the StatefulSet, through its Service, password from a Secret
    assert "backend-store-uri" not in args  # mlflow reads MLFLOW_BACKEND_STORE_URI
    pg_env = {e["name"]: e for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    user, database = pg_env["POSTGRES_USER"]["value"], pg_env["POSTGRES_DB"]["value"]
    pg_service = services[statefulset["spec"]["serviceName"]]
    pg_port = pg_service["spec"]["ports"][0]["port"]
    uri = f"postgresql+psycopg2://{user}:$(POSTGRES_PASSWORD)@{pg_service['metadata']['name']}:{pg_port}/{database}"
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == uri
    names = [e["name"] for e in container["env"]]
    assert names.index("POSTGRES_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI")  # $(...) sees earlier ones
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    (init,) = pod["spec"]["initContainers"]
    assert init["command"] == ["mlflow", "db", "upgrade"] and init["args"] == ["$(MLFLOW_BACKEND_STORE_URI)"]
    assert {e["name"]: e.get("value") for e in init["env"]}["MLFLOW_BACKEND_STORE_URI"] == uri
    assert init["image"] == container["image"]
    # no state in the pod: no volume but scratch space
    assert all("persistentVolumeClaim" not in v for v in pod["spec"]["volumes"])
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert services["mlflow"]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert services["mlflow"]["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}
    assert pg_service["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    for spec in (pod["spec"], statefulset["spec"]["template"]["spec"]):
        assert spec["securityContext"]["runAsNonRoot"] is True
    # only MLflow reaches PostgreSQL
    (_, policy), = _kind("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    (rule,) = policy["spec"]["ingress"]
    assert [f["podSelector"]["matchLabels"] for f in rule["from"]] == [deployment["spec"]["selector"]["matchLabels"]]


def _dockerfile_args(path: pathlib.Path) -> tuple[list[str], dict[str, str]]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    args = dict(line.split(None, 1)[1].split("=", 1) for line in lines if line.startswith("ARG ") and "=" in line)
    return lines, args


def test_the_mlflow_image_holds_mlflow_psycopg2_and_boto3_only():
    from packaging.requirements import Requirement

    path = KUBERAY / "mlflow-image" / "Dockerfile"
    lines, args = _dockerfile_args(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["Dockerfile"]  # the build context is this file
    (base,) = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line.split(None, 1)[1])
               for line in lines if line.startswith("FROM ")]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base  # not Ray's multi-GB image
    installs = [line for line in lines if "pip install" in line]
    (install,) = installs
    packages = re.findall(r'"([\w-]+)==\$\{(\w+)\}"', install)
    assert sorted(name for name, _ in packages) == ["boto3", "mlflow", "psycopg2-binary"], install
    pyproject = (ROOT / "pyproject.toml").read_text()
    wanted = Requirement(next(d for d in re.findall(r'"([^"]+)"', pyproject) if d.startswith("mlflow")))
    version = args["MLFLOW_VERSION"]
    assert wanted.specifier.contains(version), f"the server's MLflow {version} is outside {wanted}"
    for overlay in OVERLAYS:  # the kustomizations deploy the tag the README builds
        images = {i["name"]: i for i in yaml.safe_load((KUBERAY / overlay / "kustomization.yaml").read_text())["images"]}
        assert images["tuneorch-mlflow"]["newTag"] == version
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_builds_on_this_ray_version_and_runs_as_non_root():
    import ray

    lines = [line.strip() for line in (KUBERAY / "Dockerfile").read_text().splitlines()]
    args = dict(line.split(None, 1)[1].split("=", 1) for line in lines if line.startswith("ARG ") and "=" in line)
    froms = [line.split(None, 1)[1] for line in lines if line.startswith("FROM ")]
    assert len(froms) == 1
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], froms[0])
    assert base == f"rayproject/ray:{ray.__version__}-py311-gpu"
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    text = "\n".join(lines)
    assert "pip install --no-cache-dir ." in text
    for package in ("orchestrator", "search_algs", "schedulers", "examples"):
        assert f"COPY --chown=1000:100 {package} ./{package}" in text
    assert f"ray.__version__ == '{ray.__version__}'" in text


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=lambda p: str(p.parent.relative_to(KUBERAY)))
def test_kustomizations_name_files_that_exist(path):
    import ray

    config = yaml.safe_load(path.read_text())
    assert config["kind"] == "Kustomization"
    for entry in config.get("resources", []):
        assert (path.parent / entry).exists(), entry
    listed = set(config.get("resources", []))
    for generator in config.get("configMapGenerator", []):
        for entry in generator.get("files", []):
            assert (path.parent / entry.split("=")[-1]).is_file(), entry
            listed.add(entry.split("=")[-1])
    # every manifest of the folder is applied: none lies there forgotten
    here = {p.name for p in path.parent.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert here <= listed, f"{path.parent.name}/ holds files its kustomization does not list: {sorted(here - listed)}"
    for image in config.get("images", []):
        if image["name"] == "tuneorch":
            assert f"ray{ray.__version__}" in image["newTag"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_builds(overlay):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed; the file checks above still ran")
    done = subprocess.run([kubectl, "kustomize", str(KUBERAY / overlay)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    ray_kind = {"rayjob": "RayJob", "raycluster": "RayCluster"}[overlay]
    assert kinds == sorted(["ConfigMap", "Deployment", "Namespace", "NetworkPolicy", "Service", "Service",
                            "StatefulSet", ray_kind])
    images = {c["image"] for d in docs for c in _all_containers(d)}
    overlay_images = yaml.safe_load((KUBERAY / overlay / "kustomization.yaml").read_text())["images"]
    assert {f"{i['newName']}:{i['newTag']}" for i in overlay_images} <= images  # the images: entries apply
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "tuneorch", doc["kind"]


def _all_containers(doc: dict):
    """Every container (init ones too) of any manifest, wherever its pod template sits."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from _all_containers(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _all_containers(item)


# ----- Secrets and credentials -------------------------------------------------------------------

DEPLOY_TEXT_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in ("", ".yaml", ".py", ".dockerignore"))
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|KEY_ID|CREDENTIAL|API_KEY", re.I)


def credential_problems(text: str, docs: list[dict], where: str) -> list[str]:
    """Literal credentials in a deploy file: a secret-looking variable with a value, a password in
    a URI, an AWS key, a private key, a bucket name in an s3:// URI, a Secret object."""
    problems = []
    if re.search(r"AKIA[0-9A-Z]{16}", text):
        problems.append(f"{where}: an AWS access key id")
    if "PRIVATE KEY-----" in text:
        problems.append(f"{where}: a private key")
    for match in re.finditer(r"\b[a-z][a-z0-9+.-]*://([^/\s:@]+):([^@\s/]+)@", text):
        if not re.fullmatch(r"\$\(\w+\)|\$\{?\w+\}?", match.group(2)):
            problems.append(f"{where}: a password written in the URI {match.group(0)}")
    for match in re.finditer(r"s3://([^\s'\"`/,]*)", text):
        bucket = match.group(1)  # fine: a variable, or a placeholder no bucket can be (upper case)
        if bucket not in ("", "...") and not bucket.startswith(("$", "<")) and not re.fullmatch(r"[A-Z_-]+", bucket):
            problems.append(f"{where}: a bucket written in {match.group(0)} (read it from the Secret)")
    for doc in docs:
        if doc.get("kind") == "Secret":
            problems.append(f"{where}: a Secret object (create Secrets by hand, see the README)")
        for container in _all_containers(doc):
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]) and "value" in variable:
                    problems.append(f"{where}: {variable['name']} has a literal value (use valueFrom.secretKeyRef)")
    for match in re.finditer(r"^\s*(?:ENV|ARG)\s+(\w+)=(\S+)", text, re.M):
        if SECRET_NAME.search(match.group(1)):
            problems.append(f"{where}: {match.group(1)} set in the Dockerfile")
    return problems


def test_no_credentials_or_buckets_are_written_in_deploy():
    problems = []
    for path in DEPLOY_TEXT_FILES:
        text = path.read_text()
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)] if path.suffix == ".yaml" else []
        problems += credential_problems(text, docs, str(path.relative_to(ROOT)))
    assert not problems, "\n".join(problems)
    assert len(DEPLOY_TEXT_FILES) >= 15


def test_the_credential_check_is_not_vacuous():
    bad = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
        {"name": "c", "env": [{"name": "POSTGRES_PASSWORD", "value": "hunter2"}]}]}}}}
    text = ("uri: postgresql://mlflow:hunter2@db:5432/mlflow\nkey: AKIAABCDEFGHIJKLMNOP\n"
            "dest: s3://my-bucket/x\nENV AWS_SECRET_ACCESS_KEY=abc\n")
    found = "\n".join(credential_problems(text, [bad, {"kind": "Secret"}], "f"))
    for expected in ("password written in the URI", "AWS access key id", "bucket written in s3://my-bucket",
                     "AWS_SECRET_ACCESS_KEY set in the Dockerfile", "POSTGRES_PASSWORD has a literal value",
                     "a Secret object"):
        assert expected in found, found
    fine = "uri: postgresql+psycopg2://mlflow:$(POSTGRES_PASSWORD)@db/mlflow\ndest: s3://$(S3_BUCKET)/x\n"
    assert credential_problems(fine, [], "f") == []


def documented_secrets() -> dict[str, set[str]]:
    """``kubectl create secret generic NAME --from-literal=KEY=...`` of the README: NAME -> keys."""
    import shlex

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploying on Kubernetes", 1)[1].split("\n## ", 1)[0]
    commands = re.sub(r"\\\n\s*", " ", section)  # continuation lines joined
    out: dict[str, set[str]] = {}
    for line in commands.splitlines():
        line = line.strip()
        if line.startswith("kubectl") and " create secret generic " in line:
            words = shlex.split(line)
            name = words[words.index("generic") + 1]
            out[name] = {w.split("=", 2)[1] for w in words if w.startswith("--from-literal=")}
    return out


def referenced_secrets() -> tuple[set[tuple[str, str]], set[str]]:
    """(secret, key) pairs the manifests read one by one, and secrets read whole (envFrom) or by
    the KubeRay operator (a RayCluster's authOptions.secretName)."""
    pairs, whole = set(), set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict):
                pairs.add((ref["name"], ref["key"]))
            if isinstance(node.get("secretRef"), dict):
                whole.add(node["secretRef"]["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in KUBERAY_MANIFESTS:
        for doc in _docs(path):
            walk(doc)
            token = doc.get("spec", {}).get("authOptions", {}).get("secretName")
            if token:
                pairs.add((token, "auth_token"))  # the key KubeRay reads the token from
    return pairs, whole


def test_the_secrets_the_manifests_read_are_those_the_readme_creates():
    documented = documented_secrets()
    pairs, whole = referenced_secrets()
    assert documented and pairs and whole
    missing = sorted(f"{name}/{key}" for name, key in pairs if key not in documented.get(name, set()))
    assert not missing, f"the manifests read Secret keys the README's commands do not create: {missing}"
    assert whole <= set(documented), f"envFrom Secrets the README does not create: {sorted(whole - set(documented))}"
    unused = sorted(set(documented) - whole - {name for name, _ in pairs})
    assert not unused, f"the README creates Secrets nothing reads: {unused}"
    for name, keys in documented.items():  # a key nobody reads is a leftover (envFrom reads them all)
        if name not in whole:
            assert keys == {k for n, k in pairs if n == name}, (name, keys)
    # the checkpoints' bucket: the RayJob's entrypoint reads S3_BUCKET from that same Secret
    (_, job), = _kind("RayJob")
    assert "$S3_BUCKET" in job["spec"]["entrypoint"] and "S3_BUCKET" in documented["tuneorch-s3"]


# ----- token authentication: `ray job submit` to a head started with `ray start` ----------------
#
# Measured here (2 cores, loaded): head up in ~12 s, the refused submission ~4 s, a 3-trial
# `tuneorch run` as a Ray Job ~17 s; ~35 s in all. The head runs in its own process group and
# temp dir (so `ray.init("auto")` elsewhere on the host never finds it) and is ended through
# that group only.

import secrets  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402


def tiny_trainable(config):
    """Imported by the Ray Job's trials as test_deploy.tiny_trainable."""
    from ray import tune as ray_tune

    ray_tune.report({"loss": (config["x"] - 0.3) ** 2})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """``ray start --head --block`` with token auth, in its own session; ``stop()`` ends only it."""

    PORT_FLAGS = ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                  "metrics-export-port", "runtime-env-agent-port", "ray-client-server-port")

    def __init__(self, temp_dir: str, token: str, env: dict):
        self.temp_dir, self.token = temp_dir, token
        self.ports = {flag: _free_port() for flag in self.PORT_FLAGS}
        self.dashboard = f"http://127.0.0.1:{self.ports['dashboard-port']}"
        self.env = dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90.0) -> None:
        import urllib.request

        ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
        cmd = [ray_cli, "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=true",
               "--dashboard-host=127.0.0.1", f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        cmd += [f"--{flag}={port}" for flag, port in self.ports.items()]
        self.log = open(os.path.join(self.temp_dir, "head.log"), "wb")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout_s
        request = urllib.request.Request(f"{self.dashboard}/api/version",
                                         headers={"Authorization": f"Bearer {self.token}"})
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        tail = pathlib.Path(self.temp_dir, "head.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"ray head not up within {timeout_s} s; log tail:\n{tail}")

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        # SIGTERM first (GCS, dashboard and agents exit within a second; the raylet and
        # `ray start --block` itself linger for 30 s and more), then SIGKILL what is left.
        for sig, grace_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + grace_s
            while time.monotonic() < end:
                self.proc.poll()  # reap the leader, or the group never empties
                members = _group_members(pgid)
                if not members or (sig == signal.SIGTERM and members == [pgid]):
                    break  # all gone, or only the lingering `ray start --block` is left
                time.sleep(0.2)
            else:
                continue
            if not _group_members(pgid):
                break
        self.proc.poll()
        # anything of this head that left the group still names its private temp dir
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if self.temp_dir.encode() in f.read():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        self.proc = None
        self.log.close()


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(pid))
    return sorted(members)


@pytest.fixture
def token_head():
    temp_dir = f"/tmp/tuneorch-head-{os.getpid()}-{secrets.token_hex(3)}"  # short: Unix socket paths
    os.makedirs(temp_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = temp_dir  # no ~/.ray/auth_token of this user: the token comes from RAY_AUTH_TOKEN only
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
    head = RayHead(temp_dir, secrets.token_hex(16), env)
    head.start()
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_ray_job_submit_with_token_auth_runs_a_spec(token_head):
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    spec = pathlib.Path(token_head.temp_dir, "spec.yaml")
    spec.write_text(yaml.safe_dump({
        "name": "token-job", "trainable": "test_deploy:tiny_trainable", "metric": "loss", "mode": "min",
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}, "num_samples": 3,
        "storage_path": str(pathlib.Path(token_head.temp_dir, "runs")), "tracking_uri": "",
    }))
    entrypoint = [sys.executable, "-m", "orchestrator.cli", "run", str(spec), "--quiet"]
    client_env = {k: v for k, v in token_head.env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}

    # the token alone is not enough: without RAY_AUTH_MODE=token the client does not send it
    refused = subprocess.run([ray_cli, "job", "submit", "--address", token_head.dashboard, "--", "true"],
                             env=dict(client_env, RAY_AUTH_TOKEN=token_head.token),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "Token authentication is enabled" in refused.stdout + refused.stderr

    done = subprocess.run([ray_cli, "job", "submit", "--address", token_head.dashboard, "--", *entrypoint],
                          env=dict(client_env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token_head.token),
                          capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "succeeded" in output and re.search(r"trials +\| 3 terminated", output), output[-4000:]
