"""Run ``tuneorch run SPEC`` on the head node of a cluster-launcher cluster (``address: auto``).

``ray submit`` copies this ONE file to the head (``~/submit_driver.py``) and runs it there with
the arguments after ``--``; the package itself is already on every node (the cluster YAMLs
mount the repository at ``~/tuneorch`` and ``pip install -e`` it)::

    ray up deploy/cluster/aws-gpu.yaml                      # from the repository root
    ray submit deploy/cluster/aws-gpu.yaml deploy/cluster/submit_driver.py -- \\
        examples/digits_mlp.yaml --set resources.gpu=1 \\
        --set storage_path=s3://MY-BUCKET/tuneorch --set tracking_uri=http://MLFLOW:5000

The spec path is taken as given when it exists, else relative to the mounted repository
(``$TUNEORCH_HOME``, default ``~/tuneorch``). The run starts in that repository, so
``trainable: tuneorch_examples.digits_mlp:train_digits`` imports the way it does locally. The driver
joins the running cluster (``--set address=auto`` comes first; a later ``--set address=...``
wins). On more than one node, ``storage_path`` must be shared storage (``s3://``, ``gs://``,
NFS): a head-local directory fails when a worker node saves a checkpoint.

``--validate`` checks the spec (``tuneorch validate``) without starting anything.
"""

from __future__ import annotations

import argparse
import os
import sys

REPO_ENV = "TUNEORCH_HOME"
DEFAULT_REPO = "~/tuneorch"


def repo_dir() -> str:
    """Where the cluster YAMLs mount the repository on every node."""
    return os.path.abspath(os.path.expanduser(os.environ.get(REPO_ENV) or DEFAULT_REPO))


def resolve_spec(path: str, repo: str) -> str:
    """The spec file: as given (absolute or relative to here), else relative to the repository."""
    candidates = [os.path.abspath(os.path.expanduser(path))]
    if not os.path.isabs(path):
        candidates.append(os.path.join(repo, path))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise SystemExit(f"submit_driver: spec {path!r} not found; looked at {candidates} "
                     f"(set {REPO_ENV} if the repository is mounted elsewhere)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="submit_driver.py", description=__doc__.split("\n")[0])
    parser.add_argument("spec", help="YAML experiment spec (path in the repository, e.g. examples/digits_mlp.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec field, as in `tuneorch run --set`")
    parser.add_argument("--address", default="auto",
                        help="Ray address the run joins (default: auto, the cluster of this head node)")
    parser.add_argument("--quiet", action="store_true", help="no progress table, only the summary")
    parser.add_argument("--validate", action="store_true", help="only validate the spec (no Ray)")
    return parser


def build_command(argv: list[str] | None = None) -> tuple[str, list[str]]:
    """``(working directory, tuneorch arguments)`` for the command line of this script."""
    args = _parser().parse_args(argv)
    repo = repo_dir()
    spec = resolve_spec(args.spec, repo)
    workdir = repo if os.path.isdir(repo) else os.path.dirname(spec)
    overrides = [f"address={args.address}", *args.overrides]
    command = ["validate" if args.validate else "run", spec]
    for item in overrides:
        command += ["--set", item]
    if args.quiet and not args.validate:
        command.append("--quiet")
    return workdir, command


def warn_if_storage_is_local(spec_path: str, overrides: list[str]) -> None:
    """A head-local ``storage_path`` only works while every trial runs on the head."""
    import yaml

    from orchestrator.spec import apply_override

    with open(spec_path) as f:
        data = yaml.safe_load(f) or {}
    for item in overrides:
        try:
            apply_override(data, item)
        except Exception:  # noqa: BLE001 - tuneorch itself reports bad overrides
            return
    storage = str(data.get("storage_path") or "./runs")
    if "://" not in storage or storage.startswith("file://"):
        print(f"submit_driver: storage_path {storage!r} is local to the head node; with worker nodes use "
              f"shared storage (--set storage_path=s3://BUCKET/PATH, gs://..., or an NFS mount)",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    workdir, command = build_command(argv)
    os.chdir(workdir)  # trainables given as module:function and relative paths resolve from here
    if workdir not in sys.path:
        sys.path.insert(0, workdir)
    from orchestrator.cli import main as tuneorch

    overrides = [command[i + 1] for i, part in enumerate(command) if part == "--set"]
    if command[0] == "run":
        warn_if_storage_is_local(command[1], overrides)
    print("submit_driver: tuneorch " + " ".join(command), f"(in {workdir})", flush=True)
    return tuneorch(command)


if __name__ == "__main__":
    sys.exit(main())
