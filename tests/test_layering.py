"""The numerical cores know nothing of Ray: they import with Ray made unimportable."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def core_modules() -> list[str]:
    names = []
    for package in ("search_algs/core", "schedulers/core"):
        for path in sorted((ROOT / package).glob("*.py")):
            names.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return names


def test_core_modules_import_without_ray():
    modules = core_modules() + ["search_algs.space", "search_algs.converters"]
    code = "import sys; sys.modules['ray'] = None\n" + "\n".join(f"import {m}" for m in modules)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
