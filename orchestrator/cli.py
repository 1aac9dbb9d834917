"""``tuneorch``: run, validate and browse tuning experiments from YAML specs.

    tuneorch run examples/digits_mlp.yaml --set num_samples=4 --set search=tpe
    tuneorch resume runs/digits-mlp-20261127-130000
    tuneorch export runs/digits-mlp-20261127-130000 --out results/
    tuneorch validate examples/digits_mlp.yaml
    tuneorch ui --tracking-uri sqlite:///runs/mlflow.db
"""

from __future__ import annotations

import argparse
import os
import sys

from orchestrator.api import TrialReportError
from orchestrator.faults import ResumeError
from orchestrator.spec import ExperimentSpec, SpecError
from search_algs.errors import SpaceError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuneorch", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the experiment a YAML spec describes")
    run.add_argument("spec", help="path of the YAML experiment spec")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec field (dotted keys reach into mappings), e.g. --set num_samples=4")
    run.add_argument("--quiet", action="store_true", help="no progress table, only the summary")

    resume = sub.add_parser("resume", help="continue an experiment whose driver stopped")
    resume.add_argument("experiment", help="the experiment directory 'tuneorch run' printed")
    resume.add_argument("--quiet", action="store_true")

    export = sub.add_parser("export", help="write an experiment's results as Parquet tables")
    export.add_argument("experiment", help="the experiment directory 'tuneorch run' printed")
    export.add_argument("--out", default=None, help="folder or URI (default: <experiment>/parquet)")

    validate = sub.add_parser("validate", help="check a spec without starting Ray")
    validate.add_argument("spec")
    validate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    ui = sub.add_parser("ui", help="open the MLflow UI on a tracking store")
    ui.add_argument("--tracking-uri", default="sqlite:///runs/mlflow.db")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    return parser


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
            result = run(spec, verbose=0 if args.quiet else 1)
            print(result.summary())
            return _exit_code(result)
        if args.command == "resume":
            from orchestrator.api import resume

            result = resume(args.experiment, verbose=0 if args.quiet else 1)
            print(result.summary())
            return _exit_code(result)
        if args.command == "export":
            from orchestrator.export import export_parquet

            for name, path in export_parquet(args.experiment, args.out).items():
                print(f"{name}: {path}")
            return 0
        if args.command == "ui":
            # The mlflow of this interpreter, also when its venv is not activated.
            command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.tracking_uri,
                       "--host", args.host, "--port", str(args.port)]
            print(" ".join(command[1:]), flush=True)
            os.execv(command[0], command)
    except (SpecError, SpaceError, TrialReportError, ResumeError) as exc:
        print(f"tuneorch: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _exit_code(result) -> int:
    if result.interrupted:
        return 130  # the shell's code for "stopped by Ctrl-C": scripts can tell it from a failure
    return 0 if result.best_config is not None else 1


if __name__ == "__main__":
    sys.exit(main())
