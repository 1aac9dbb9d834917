"""The multi-objective benchmark (issue #22): the command end to end on a tiny grid, and the
normalised hypervolume against values known in closed form. Fast (no Ray, no table file read)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

pytest.importorskip("optuna")

from benchmarks.__main__ import main  # noqa: E402
from benchmarks.mo_problems import branin_currin, dtlz2, get_mo_problem, tabular_columns, zdt  # noqa: E402
from benchmarks.problems import HeldOutDatasetError  # noqa: E402


def test_tiny_run_through_the_command_writes_results_with_hv_in_unit_interval(tmp_path, capsys):
    out = tmp_path / "mo"
    rc = main(["multi-objective", "--problems", "zdt1_d6,branin_currin_c", "--seeds", "2", "--budget", "12",
               "--out", str(out)])
    assert rc == 0
    assert os.path.exists(out / "results.json") and os.path.exists(out / "results.md")
    data = json.loads((out / "results.json").read_text())
    runs = data["runs"]
    assert len(runs) == 2 * 2 * 4  # problems x seeds x optimisers
    assert {r["optimizer"] for r in runs} == {"motpe", "random", "optuna-motpe", "optuna-nsga2"}
    for r in runs:
        assert r["error"] is None, r["error"]
        assert sorted(r["hv"], key=int) == ["3", "6", "12"]
        assert all(0.0 <= v <= 1.0 for v in r["hv"].values()), r["hv"]
        assert list(r["hv"].values()) == sorted(r["hv"].values())  # HV never shrinks as points are added
        assert len(r["ask_cpu"]) == len(r["true"]) == 12
    # same seed, same problem: the prior draws of our two optimisers coincide (same generator seed)
    a = next(r for r in runs if r["optimizer"] == "motpe" and r["seed"] == 0 and r["problem"] == "zdt1_d6")
    b = next(r for r in runs if r["optimizer"] == "random" and r["seed"] == 0 and r["problem"] == "zdt1_d6")
    assert a["true"][:10] == b["true"][:10]
    md = (out / "results.md").read_text()
    assert "Normalised hypervolume" in md and "Target" in md
    assert main(["multi-objective", "--problems", "nope"]) == 2


def test_known_point_sets_have_known_normalised_hypervolume():
    p = get_mo_problem("zdt1_d6")
    assert p.normalised_hv(np.array([[0.5, 0.5]])) == pytest.approx(10.5 * 10.5 / (121 - 1 / 3))
    # two points: the union of two boxes
    two = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert p.normalised_hv(two) == pytest.approx((11 * 10 + 10 * 11 - 10 * 10) / (121 - 1 / 3))
    # the exact front reaches 1 (dense sample: from below)
    f1 = np.linspace(0, 1, 401)
    assert p.normalised_hv(np.c_[f1, 1 - np.sqrt(f1)]) == pytest.approx(1.0, abs=1e-4)
    q = get_mo_problem("zdt2_d6")
    assert q.normalised_hv(np.c_[f1, 1 - f1 ** 2]) == pytest.approx(1.0, abs=1e-4)
    # a point beyond the reference point adds nothing; infeasible points do not count
    assert p.normalised_hv(np.array([[12.0, 0.0]])) == 0.0
    c = get_mo_problem("branin_currin_c")
    y = np.array([[40.0, 6.0]])
    assert c.normalised_hv(y, violation=np.array([0.0])) == pytest.approx(40 * 6 / c.hv_max)
    assert c.normalised_hv(y, violation=np.array([3.0])) == 0.0


def test_problem_formulas():
    x = np.array([0.25, 0, 0, 0, 0, 0])
    assert zdt(x, 1) == pytest.approx([0.25, 0.5])
    assert zdt(x, 2) == pytest.approx([0.25, 1 - 0.0625])
    y = dtlz2(np.array([0.3, 0.7, 0.5, 0.5, 0.5, 0.5]))
    assert float(np.sum(y ** 2)) == pytest.approx(1.0)  # on the unit sphere when g = 0
    p = get_mo_problem("dtlz2_m3_d6")
    assert p.hv_max == pytest.approx(1.1 ** 3 - math.pi / 6)
    # Branin's minimisers of the classic domain map into the unit box: f1 = 5 / (4 pi)
    assert branin_currin(math.pi / 15 + 1 / 3, 2.275 / 15)[0] == pytest.approx(0.397887, abs=1e-5)
    c = get_mo_problem("branin_currin_c")
    assert c.violation({"x0": 0.5, "x1": 0.5}) == 0.0  # the centre (t = (2.5, 7.5)) is feasible
    assert c.violation({"x0": 0.0, "x1": 0.0}) == pytest.approx(7.5 ** 2 * 2 - 50)


def test_held_out_tables_are_refused_before_any_file_is_read():
    with pytest.raises(HeldOutDatasetError):
        tabular_columns("hpobench", "vehicle", "train_time")
