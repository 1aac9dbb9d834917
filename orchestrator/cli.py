"""``tuneorch``: run, validate and browse tuning experiments from YAML specs.

    tuneorch run examples/digits_mlp.yaml --set num_samples=4 --set search=tpe
    tuneorch resume runs/digits-mlp-20261127-130000
    tuneorch export runs/digits-mlp-20261127-130000 --out results/
    tuneorch validate examples/digits_mlp.yaml
    tuneorch ui --tracking-uri sqlite:///runs/mlflow.db
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

from orchestrator.errors import SpecError
from orchestrator.spec import ExperimentSpec
from search_algs.errors import TuneorchError

# Every error tuneorch raises for the user's input or situation is a TuneorchError (spec, space,
# searcher/scheduler options, tracking, resume). Nothing broader is caught: any other exception
# is a bug in tuneorch and its traceback is what a bug report needs.
USER_ERRORS = (TuneorchError,)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuneorch", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the experiment a YAML spec describes")
    run.add_argument("spec", help="path of the YAML experiment spec")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec field (dotted keys reach into mappings), e.g. --set num_samples=4")
    _console_flags(run)

    resume = sub.add_parser("resume", help="continue an experiment whose driver stopped")
    resume.add_argument("experiment", help="the experiment directory 'tuneorch run' printed")
    _console_flags(resume)

    export = sub.add_parser("export", help="write an experiment's results as Parquet tables")
    export.add_argument("experiment", help="the experiment directory 'tuneorch run' printed")
    export.add_argument("--out", default=None, help="folder or URI (default: <experiment>/parquet)")

    validate = sub.add_parser("validate", help="check a spec without starting Ray")
    validate.add_argument("spec")
    validate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    ui = sub.add_parser("ui", help="open the MLflow UI on a tracking store")
    ui.add_argument("--tracking-uri", default="sqlite:///runs/mlflow.db",
                    help="the 'mlflow records' URI the run printed (a database or a folder)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    return parser


def _console_flags(parser: argparse.ArgumentParser) -> None:
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", action="store_true", help="print the summary alone")
    loudness.add_argument("--verbose", action="store_true",
                          help="Ray Tune's own console output (per-trial boxes, checkpoints, warnings) "
                               "instead of tuneorch's progress line")


def _verbosity(args: argparse.Namespace) -> int:
    """``verbose`` of :func:`orchestrator.api.run`: 0 summary alone, 1 our console, 2 Ray's."""
    return 0 if args.quiet else 2 if args.verbose else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.path.insert(0, os.getcwd())  # trainables given as module:function resolve from here
    try:
        if args.command == "validate":
            spec = ExperimentSpec.from_yaml(args.spec, args.overrides)
            print(f"{args.spec}: valid ({len(spec.space.params)} parameters: {', '.join(spec.space.names)})")
            return 0
        if args.command == "run":
            from orchestrator.api import run

            spec = ExperimentSpec.from_yaml(args.spec, args.overrides)
            result = run(spec, verbose=_verbosity(args))
            print(result.summary())
            return _exit_code(result)
        if args.command == "resume":
            from orchestrator.api import resume

            _check_experiment_folder(args.experiment, "resume")
            result = resume(args.experiment, verbose=_verbosity(args))
            print(result.summary())
            return _exit_code(result)
        if args.command == "export":
            _check_experiment_folder(args.experiment, "export")  # before export_parquet creates anything
            from orchestrator.export import export_parquet

            for name, path in export_parquet(args.experiment, args.out).items():
                print(f"{name}: {path}")
            return 0
        if args.command == "ui":
            # The mlflow of this interpreter, also when its venv is not activated.
            _check_ui(args.tracking_uri, args.host, args.port)
            command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.tracking_uri,
                       "--host", args.host, "--port", str(args.port)]
            print(" ".join(command[1:]), flush=True)
            # One worker and no job runner: a UI for one user; the defaults' extra worker
            # processes kept dying on a loaded 2-core machine.
            os.environ.setdefault("MLFLOW_WORKERS", "1")
            os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            address = f"http://{args.host}:{args.port}"
            print(f"MLflow UI: {address}", flush=True)
            for name, url in _experiment_links(args.tracking_uri, address):
                print(f"  {name}: {url}", flush=True)
            os.execv(command[0], command)
    except USER_ERRORS as exc:
        print(f"tuneorch: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _experiment_links(tracking_uri: str, address: str, most: int = 8) -> list[tuple[str, str]]:
    """``(name, runs page URL)`` of the store's most recently updated experiments. MLflow 3's UI
    opens its GenAI view at the bare address; an experiment's page with
    ``workflowType=machine_learning`` shows its runs (the home page with that parameter did not).
    Nothing when the store cannot be read here: the UI still starts."""
    try:
        from mlflow import MlflowClient

        experiments = MlflowClient(tracking_uri).search_experiments(
            max_results=most, order_by=["last_update_time DESC"])
    except Exception:  # noqa: BLE001 - links are a convenience; MLflow says what is wrong
        return []
    return [(e.name, f"{address}/#/experiments/{e.experiment_id}?workflowType=machine_learning")
            for e in experiments if e.name != "Default"]


def _check_experiment_folder(path: str, verb: str = "export") -> None:
    """``tuneorch export``/``resume`` of a folder that is not an experiment: refused before
    anything is created there (export would create it and an empty ``parquet/`` inside), with
    what to give."""
    if "://" in path and not path.startswith("file://"):
        return  # a bucket: export_parquet reads it and says what is missing
    local = os.path.abspath(os.path.expanduser(path.removeprefix("file://")))
    hint = "give the experiment directory 'tuneorch run' printed (runs/<name>-<date>-<time>)"
    if not os.path.exists(local):
        raise SpecError(f"{verb}: experiment folder {path!r} does not exist; {hint}")
    if not os.path.isdir(local):
        raise SpecError(f"{verb}: {path!r} is a file, not an experiment folder; {hint}")
    if not glob.glob(os.path.join(glob.escape(local), "experiment_state-*.json")) and \
            not glob.glob(os.path.join(glob.escape(local), "tuneorch-spec*")):
        raise SpecError(f"{verb}: {path!r} holds no Tune experiment (no experiment_state-*.json); {hint}")


#: Backend stores ``mlflow ui`` reads (a plain path or file:// is a file store).
_UI_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file")


def _check_ui(uri: str, host: str, port: int) -> None:
    """``tuneorch ui`` with a store it cannot read, or a port it cannot listen on: refused before
    MLflow starts (it would create an empty database, or die with a traceback)."""
    import socket

    hint = "give the 'mlflow records' URI the run printed (sqlite:///runs/mlflow.db by default)"
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        raise SpecError(f"ui: {uri!r} is an MLflow server already: browse it; 'tuneorch ui' opens a "
                        f"database or folder store")
    if scheme and scheme not in _UI_SCHEMES:
        raise SpecError(f"ui: --tracking-uri {uri!r} has an unknown scheme {scheme!r} (known: "
                        f"{', '.join(s + '://' for s in _UI_SCHEMES)}); {hint}")
    if scheme == "sqlite":
        path = uri.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
        if path in ("", ":memory:"):
            raise SpecError(f"ui: --tracking-uri {uri!r} names no database file; {hint}")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise SpecError(f"ui: the folder of the database {path!r} does not exist ({folder}); {hint}")
        if not os.path.isfile(path):
            raise SpecError(f"ui: no MLflow database at {path!r} (nothing was recorded there yet); {hint}")
    elif scheme in ("", "file"):
        folder = uri.split("://", 1)[1] if scheme else uri
        if not os.path.isdir(folder):
            raise SpecError(f"ui: the store folder {folder!r} does not exist; {hint}")
    if not 0 < port < 65536:
        raise SpecError(f"ui: --port must be 1-65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SpecError(f"ui: --host {host!r} does not resolve ({exc}); use 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise SpecError(f"ui: cannot listen on {host}:{port} ({exc.strerror or exc}); another "
                            f"program uses the port: pass --port with a free one, e.g. --port {port + 1}") from None


def _exit_code(result) -> int:
    if result.interrupted:
        return 130  # the shell's code for "stopped by Ctrl-C": scripts can tell it from a failure
    return 0 if result.best_config is not None else 1


if __name__ == "__main__":
    sys.exit(main())
