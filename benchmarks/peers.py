"""Every optimiser behind one small ask/tell interface.

The common currency is the *flat* point of :class:`search_algs.space.Space`: ``{param name:
value}`` over the active parameters, categoricals as choice indices. Each adapter translates
our space into its optimiser's own language once, at construction, and translates each
suggestion back; the harness then checks every suggestion against the space
(``Space.to_flat``), so a translation bug fails loudly instead of biasing a table.

Optimisers (see :data:`OPTIMIZERS` and :func:`optimizer_specs`):

* ours: every searcher in ``orchestrator.registry.SEARCHERS``, built as
  ``Cls(space=..., metric="loss", mode="min", seed=...)`` and driven through Ray's ``Searcher``
  interface (``suggest`` / ``on_trial_result`` / ``on_trial_complete``) without a cluster; and
  ablation variants of them with one option switched (:data:`VARIANTS`, e.g. ``gp-ei-plain``),
  which run only when named.
* ``hyperopt-tpe``: hyperopt's ``tpe.suggest`` with its defaults on a ``Trials`` object (the
  native ask/tell used by ``fmin`` itself).
* ``optuna-tpe``, ``optuna-gp``: Optuna's ``TPESampler`` (defaults: multivariate, constant liar)
  and ``GPSampler`` (defaults), through ``study.ask`` / ``study.tell`` (define-by-run, so
  conditional spaces translate exactly).
* ``botorch-qlognei``, ``botorch-qkg``: ``SingleTaskGP`` (``Standardize`` outcome transform,
  inputs in the unit cube) fitted by ``fit_gpytorch_mll``, then ``qLogNoisyExpectedImprovement``
  (``prune_baseline=True``; ``optimize_acqf`` with 10 restarts, 512 raw samples) or one-shot
  ``qKnowledgeGradient`` (16 fantasies; 4 restarts, 128 raw samples: BoTorch's defaults of 64
  fantasies cost ~15 s per suggestion here; ``botorch-qkg64``, run only when named, has them).
  Initial design: ``2 (d + 1)`` scrambled Sobol points. Integer/stepped parameters are optimised
  as continuous and rounded to the grid (the usual relaxation); spaces with a categorical (and so
  every conditional space) are skipped: BoTorch has no categorical kernel in these standard settings.
* ``ray-hyperopt``, ``ray-optuna``: Ray Tune's own ``HyperOptSearch`` / ``OptunaSearch``
  wrappers (non-conditional spaces), to show what Ray's adapters cost.

Space translations (ours -> peer; bounds are inclusive on our side):

============================  ===================================  ================================
our domain                    hyperopt                             Optuna
============================  ===================================  ================================
Float(lo, hi)                 uniform(lo, hi)                      suggest_float(lo, hi)
Float(lo, hi, log)            loguniform(ln lo, ln hi)             suggest_float(lo, hi, log=True)
Float/Int linear, step s      quniform(-.5, n-.5, 1) on the index  suggest_float/int(lo, top, step=s)
                              k, value lo + k s (equal mass)
Int(lo, hi, log), step 1      qloguniform(ln(lo-.5), ln(hi+.5), 1) suggest_int(lo, hi, log=True)
log with step > 1             loguniform, snapped to the grid      log, snapped to the grid
Categorical (+ branches)      choice / pchoice of branch dicts     suggest_categorical(indices),
                                                                   children asked only when active
============================  ===================================  ================================
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from search_algs.space import Categorical, Float, Int, Param, Space

FlatPoint = dict  # {param name: value}, categoricals as choice indices


def _int_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2 ** 31 - 1))


def _snap(p: Param, value: float) -> Any:
    """Nearest point of ``p``'s domain (grid, bounds, integer type) to ``value``."""
    return p.decode(p.encode(value))


def _active(space: Space, p: Param, flat: FlatPoint) -> bool:
    return all(flat.get(space.params[i].name) == k for i, k in p.condition)


def _grid_top(d: Float | Int, n: int) -> float:
    return d.low + (n - 1) * d.step


class Optimizer:
    """The interface the harness drives. ``ask`` returns ``(token, flat)``; ``tell`` takes the
    token back with the observed value (to MINIMISE). ``recommend`` returns the flat point the
    optimiser itself recommends, or ``None`` (the harness then takes the best observed point).
    ``warm`` records evaluations made elsewhere (for the suggestion-cost measurement)."""

    def ask(self) -> tuple[Any, FlatPoint]:
        raise NotImplementedError

    def tell(self, token: Any, value: float) -> None:
        raise NotImplementedError

    def recommend(self) -> FlatPoint | None:
        return None

    def warm(self, flats: Sequence[FlatPoint], values: Sequence[float]) -> None:
        raise NotImplementedError


# ---- ours: Ray Searchers driven directly -------------------------------------------------------

class SearcherOptimizer(Optimizer):
    """A Ray Tune ``Searcher`` driven the way Tune drives it, one trial at a time, no cluster."""

    def __init__(self, searcher: Any, space: Space):
        self.searcher = searcher
        self.space = space
        self._n = 0

    def ask(self) -> tuple[str, FlatPoint]:
        from ray.tune.search import Searcher

        trial_id = f"bench_{self._n:05d}"
        self._n += 1
        config = self.searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            raise RuntimeError(
                f"{type(self.searcher).__name__}.suggest returned {config!r} with no trial pending; "
                f"a sequential benchmark needs a config on every call"
            )
        return trial_id, self.space.to_flat(config)

    def tell(self, token: str, value: float) -> None:
        result = {"loss": value, "training_iteration": 1, "done": True}
        self.searcher.on_trial_result(token, result)
        self.searcher.on_trial_complete(token, result)

    def recommend(self) -> FlatPoint | None:
        rec = getattr(self.searcher, "recommend", None)
        if not callable(rec):
            return None
        config = rec()
        return None if config is None else self.space.to_flat(config)

    def warm(self, flats, values) -> None:
        for flat, value in zip(flats, values):
            self.searcher.add_evaluated_point(self.space.to_config(flat), float(value))


def _build_ours(name: str, core_options: dict | None = None, **kwargs: Any) -> Callable[[Space, int], Optimizer]:
    """Builder of registry searcher ``name``. An ablation variant (:data:`VARIANTS`) passes
    extra constructor keywords ``kwargs`` and/or ``core_options``: fields of the searcher's
    ``options_class``, a dict for a nested part such as ``"prior"`` (built at construction, so
    that torch is imported only when used)."""

    def build(space: Space, seed: int) -> Optimizer:
        from orchestrator.registry import searcher_class

        cls = searcher_class(name)
        extra = dict(kwargs)
        if core_options:  # the searcher merges them into its defaults (nested parts as dicts)
            extra["options"] = core_options
        searcher = cls(space=space, metric="loss", mode="min", seed=seed, **extra)
        if getattr(searcher, "metric", None) is None or getattr(searcher, "mode", None) is None:
            searcher.set_search_properties("loss", "min", {})
        return SearcherOptimizer(searcher, space)

    return build


def _build_ray_wrapper(kind: str) -> Callable[[Space, int], Optimizer]:
    def build(space: Space, seed: int) -> Optimizer:
        from search_algs.converters import to_ray_param_space

        param_space = to_ray_param_space(space.template)
        if kind == "hyperopt":
            from ray.tune.search.hyperopt import HyperOptSearch

            searcher = HyperOptSearch(metric="loss", mode="min", random_state_seed=seed)
        else:
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            searcher = OptunaSearch(metric="loss", mode="min", seed=seed)
        searcher.set_search_properties("loss", "min", param_space)
        return SearcherOptimizer(searcher, space)

    return build


# ---- hyperopt TPE ------------------------------------------------------------------------------

class HyperoptTPE(Optimizer):
    """hyperopt's TPE (defaults: 20 random start-up jobs, 24 EI candidates, gamma 0.25) through
    its native ``Trials`` / ``tpe.suggest`` loop; parameters are labelled with our names."""

    def __init__(self, space: Space, seed: int):
        import hyperopt

        self._hp = hyperopt
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.expr = self._space_expr()
        self.domain = hyperopt.Domain(lambda config: 0.0, self.expr)
        self.trials = hyperopt.Trials()
        self._docs: dict[int, dict] = {}

    # translation ---------------------------------------------------------------------------
    def _expr(self, i: int) -> Any:
        hp = self._hp.hp
        p = self.space.params[i]
        d = p.domain
        n = p.n_grid
        if isinstance(d, Categorical):
            branches = [self._children(i, k) for k in range(len(d.choices))]
            if d.weights is not None:
                w = np.asarray(d.weights) / sum(d.weights)
                return hp.pchoice(p.name, list(zip(w.tolist(), branches)))
            return hp.choice(p.name, branches)
        if n is not None and not d.log:
            return hp.quniform(p.name, -0.5, n - 0.5, 1)  # the grid index
        if n is not None and d.log and d.step == 1 and isinstance(d, Int) and d.low > 0.5:
            return hp.qloguniform(p.name, math.log(d.low - 0.5), math.log(d.high + 0.5), 1)
        if d.log:
            return hp.loguniform(p.name, math.log(d.low), math.log(d.high))
        return hp.uniform(p.name, float(d.low), float(d.high))

    def _children(self, parent: int, k: int) -> dict:
        return {p.name: self._expr(j) for j, p in enumerate(self.space.params)
                if p.condition and p.condition[-1] == (parent, k)}

    def _space_expr(self) -> dict:
        return {p.name: self._expr(j) for j, p in enumerate(self.space.params) if not p.condition}

    def _from_hp(self, p: Param, v: float) -> Any:
        d, n = p.domain, p.n_grid
        if isinstance(d, Categorical):
            return int(v)
        if n is not None and not d.log:
            k = min(max(int(round(v)), 0), n - 1)
            value = d.low + k * d.step
            return int(value) if isinstance(d, Int) else float(round(value, 12))
        return _snap(p, v)

    def _to_hp(self, p: Param, value: Any) -> float:
        d, n = p.domain, p.n_grid
        if isinstance(d, Categorical):
            return int(value)
        if n is not None and not d.log:
            return float(round((value - d.low) / d.step))
        return float(value)

    # ask / tell ------------------------------------------------------------------------------
    def ask(self) -> tuple[int, FlatPoint]:
        from hyperopt import tpe

        tids = self.trials.new_trial_ids(1)
        self.trials.refresh()
        docs = tpe.suggest(tids, self.domain, self.trials, _int_seed(self.rng))
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()
        doc = docs[0]
        vals = doc["misc"]["vals"]
        flat: FlatPoint = {}
        for p in self.space.params:  # parents first
            if vals.get(p.name):
                flat[p.name] = self._from_hp(p, vals[p.name][0])
        tid = doc["tid"]
        return tid, flat

    def _set_done(self, tid: int, value: float) -> None:
        for t in self.trials._dynamic_trials:  # the list fmin itself updates
            if t["tid"] == tid:
                t["state"] = self._hp.JOB_STATE_DONE
                t["result"] = {"loss": float(value), "status": self._hp.STATUS_OK}
                return
        raise KeyError(f"hyperopt trial {tid} is unknown")

    def tell(self, token: int, value: float) -> None:
        self._set_done(token, value)
        self.trials.refresh()

    def warm(self, flats, values) -> None:
        tids = self.trials.new_trial_ids(len(flats))
        specs, results, miscs = [], [], []
        for tid, flat, value in zip(tids, flats, values):
            idxs, vals = {}, {}
            for p in self.space.params:
                on = p.name in flat
                idxs[p.name] = [tid] if on else []
                vals[p.name] = [self._to_hp(p, flat[p.name])] if on else []
            specs.append(None)
            results.append({"loss": float(value), "status": self._hp.STATUS_OK})
            miscs.append({"tid": tid, "cmd": self.domain.cmd, "workdir": None, "idxs": idxs, "vals": vals})
        docs = self.trials.new_trial_docs(tids, specs, results, miscs)
        for doc in docs:
            doc["state"] = self._hp.JOB_STATE_DONE
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()


# ---- Optuna ------------------------------------------------------------------------------------

def _optuna_distribution(p: Param) -> tuple[Any, bool]:
    """Optuna distribution for ``p`` and whether its values must be snapped to our grid."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    d, n = p.domain, p.n_grid
    if isinstance(d, Categorical):
        return CategoricalDistribution(list(range(len(d.choices)))), False
    if isinstance(d, Int):
        if d.log and d.step != 1:  # Optuna refuses log with step: sample log, snap
            return IntDistribution(d.low, int(_grid_top(d, n)), log=True), True
        return IntDistribution(d.low, int(_grid_top(d, n)), log=d.log, step=d.step), False
    if n is not None:
        if d.log:
            return FloatDistribution(d.low, d.high, log=True), True
        return FloatDistribution(d.low, _grid_top(d, n), step=d.step), True
    return FloatDistribution(d.low, d.high, log=d.log), False


def _optuna_suggest(trial: Any, name: str, dist: Any) -> Any:
    """``trial.suggest_*`` (the public API) for one of our translated distributions."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


class OptunaOptimizer(Optimizer):
    """An Optuna sampler through ``study.ask`` / ``study.tell``, define-by-run: a parameter is
    asked only when its parents make it active, exactly as a user's objective would."""

    def __init__(self, space: Space, seed: int, sampler: str):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        rng = np.random.default_rng(seed)
        if sampler == "tpe":
            s = optuna.samplers.TPESampler(seed=_int_seed(rng))
        elif sampler == "gp":
            s = optuna.samplers.GPSampler(seed=_int_seed(rng), warn_independent_sampling=False)
        else:
            raise ValueError(f"sampler must be 'tpe' or 'gp', got {sampler!r}")
        self.study = optuna.create_study(direction="minimize", sampler=s)
        self.dists = {p.name: _optuna_distribution(p) for p in space.params}

    def ask(self):
        trial = self.study.ask()
        flat: FlatPoint = {}
        for p in self.space.params:
            if _active(self.space, p, flat):
                dist, snap = self.dists[p.name]
                v = _optuna_suggest(trial, p.name, dist)
                flat[p.name] = _snap(p, v) if snap else (int(v) if isinstance(p.domain, (Int, Categorical)) else float(v))
        return trial, flat

    def tell(self, token, value: float) -> None:
        self.study.tell(token, float(value))

    def warm(self, flats, values) -> None:
        import optuna

        for flat, value in zip(flats, values):
            params = {k: v for k, v in flat.items()}
            dists = {k: self.dists[k][0] for k in flat}
            self.study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(value)))


# ---- BoTorch -----------------------------------------------------------------------------------

class BoTorchOptimizer(Optimizer):
    """Textbook BoTorch loop on the unit cube of our space (see the module docstring)."""

    def __init__(self, space: Space, seed: int, acquisition: str, num_fantasies: int = 16):
        if any(p.is_categorical for p in space.params):
            raise ValueError("BoTorch adapters skip spaces with categorical parameters")
        if acquisition not in ("qlognei", "qkg"):
            raise ValueError(f"acquisition must be 'qlognei' or 'qkg', got {acquisition!r}")
        from scipy.stats import qmc

        self.space = space
        self.acquisition = acquisition
        self.num_fantasies = int(num_fantasies)
        self.rng = np.random.default_rng(seed)
        self.d = space.dim
        self.n_init = 2 * (self.d + 1)
        self._sobol = qmc.Sobol(self.d, scramble=True, seed=self.rng)
        self.X: list[np.ndarray] = []  # (d,) unit vectors actually evaluated
        self.Y: list[float] = []  # losses
        self._model = None
        self._model_n = -1

    def _fit(self):
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        if self._model is not None and self._model_n == len(self.Y):
            return self._model
        X = torch.as_tensor(np.stack(self.X), dtype=torch.double)  # (n, d)
        Y = -torch.as_tensor(self.Y, dtype=torch.double).unsqueeze(-1)  # (n, 1): BoTorch maximises
        model = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        self._model, self._model_n = model, len(self.Y)
        return model

    def _propose(self) -> np.ndarray:
        import torch
        from botorch.acquisition import qKnowledgeGradient, qLogNoisyExpectedImprovement
        from botorch.optim import optimize_acqf

        torch.manual_seed(_int_seed(self.rng))  # BoTorch draws from torch's global generator
        model = self._fit()
        bounds = torch.stack([torch.zeros(self.d), torch.ones(self.d)]).double()  # (2, d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.acquisition == "qlognei":
                X = torch.as_tensor(np.stack(self.X), dtype=torch.double)
                acq = qLogNoisyExpectedImprovement(model=model, X_baseline=X, prune_baseline=True)
                cand, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
            else:
                acq = qKnowledgeGradient(model, num_fantasies=self.num_fantasies)
                cand, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=4, raw_samples=128)
        return cand.detach().numpy().reshape(self.d)

    def ask(self):
        if len(self.Y) < self.n_init:
            u = self._sobol.random(1)[0]
        else:
            u = self._propose()
        flat = self.space.decode_unit(np.clip(u, 0.0, 1.0))
        return flat, flat

    def tell(self, token, value: float) -> None:
        self.X.append(self.space.encode_flat(token))
        self.Y.append(float(value))

    def recommend(self) -> FlatPoint | None:
        """The evaluated point with the best posterior mean (in-sample; noisy-problem standard)."""
        if len(self.Y) < max(2, self.n_init):
            return None
        import torch

        model = self._fit()
        X = torch.as_tensor(np.stack(self.X), dtype=torch.double)
        with torch.no_grad():
            mean = model.posterior(X).mean.squeeze(-1).numpy()  # (n,), of -loss
        return self.space.decode_unit(self.X[int(np.argmax(mean))])

    def warm(self, flats, values) -> None:
        for flat, value in zip(flats, values):
            self.tell(flat, value)


# ---- the catalogue -----------------------------------------------------------------------------

@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimiser, what it needs, and which spaces it takes."""

    name: str
    kind: str  # "ours" or "peer"
    build: Callable[[Space, int], Optimizer]
    packages: tuple[str, ...]  # distributions whose versions are printed (and must be installed)
    modules: tuple[str, ...]  # importable modules it needs
    cheap: bool  # fit for the quick tier
    description: str
    refuses: Callable[[Space], str | None] = lambda space: None
    in_tiers: bool = True  # False: runs only when named (--optimizers), never by default in a tier
    concurrent: bool = False  # takes several asks before their tells (the harness's in-flight mode)

    def missing(self) -> str | None:
        """Why it cannot run here (a missing package), or ``None``."""
        for module, package in zip(self.modules, self.packages):
            if importlib.util.find_spec(module) is None:
                return f"'{package}' is not installed (pip install '.[bench]' or pip install {package})"
        return None


def _refuse_categorical(space: Space) -> str | None:
    if any(p.is_categorical for p in space.params):
        return "has categorical/conditional parameters (no categorical kernel in standard BoTorch)"
    return None


def _refuse_conditional(space: Space) -> str | None:
    return "is conditional (Ray's param_space cannot express it)" if space.is_conditional else None


PEERS: dict[str, OptimizerSpec] = {
    "hyperopt-tpe": OptimizerSpec(
        "hyperopt-tpe", "peer", HyperoptTPE, ("hyperopt",), ("hyperopt",), True,
        "hyperopt TPE, defaults (tpe.suggest on Trials)"),
    "optuna-tpe": OptimizerSpec(
        "optuna-tpe", "peer", lambda s, seed: OptunaOptimizer(s, seed, "tpe"), ("optuna",), ("optuna",), True,
        "Optuna TPESampler, defaults (multivariate, constant liar)", concurrent=True),
    "optuna-gp": OptimizerSpec(
        "optuna-gp", "peer", lambda s, seed: OptunaOptimizer(s, seed, "gp"), ("optuna", "torch", "scipy"),
        ("optuna", "torch", "scipy"), False, "Optuna GPSampler, defaults (running trials: qLogEI over them)",
        concurrent=True),
    "botorch-qlognei": OptimizerSpec(
        "botorch-qlognei", "peer", lambda s, seed: BoTorchOptimizer(s, seed, "qlognei"),
        ("botorch", "gpytorch", "torch"), ("botorch", "gpytorch", "torch"), False,
        "BoTorch SingleTaskGP + qLogNoisyExpectedImprovement", _refuse_categorical),
    "botorch-qkg": OptimizerSpec(
        "botorch-qkg", "peer", lambda s, seed: BoTorchOptimizer(s, seed, "qkg"),
        ("botorch", "gpytorch", "torch"), ("botorch", "gpytorch", "torch"), False,
        "BoTorch SingleTaskGP + one-shot qKnowledgeGradient (16 fantasies)", _refuse_categorical),
    "botorch-qkg64": OptimizerSpec(
        "botorch-qkg64", "peer", lambda s, seed: BoTorchOptimizer(s, seed, "qkg", num_fantasies=64),
        ("botorch", "gpytorch", "torch"), ("botorch", "gpytorch", "torch"), False,
        "BoTorch SingleTaskGP + one-shot qKnowledgeGradient, BoTorch's default 64 fantasies "
        "(4 restarts, 128 raw samples; only when named)", _refuse_categorical, in_tiers=False),
    "ray-hyperopt": OptimizerSpec(
        "ray-hyperopt", "peer", _build_ray_wrapper("hyperopt"), ("ray", "hyperopt"), ("ray", "hyperopt"), False,
        "Ray Tune's HyperOptSearch wrapper (hyperopt TPE)", _refuse_conditional),
    "ray-optuna": OptimizerSpec(
        "ray-optuna", "peer", _build_ray_wrapper("optuna"), ("ray", "optuna"), ("ray", "optuna"), False,
        "Ray Tune's OptunaSearch wrapper (Optuna TPE)", _refuse_conditional),
}


def ours() -> dict[str, OptimizerSpec]:
    """Every searcher in our registry (read now: other searchers land over time)."""
    from orchestrator.registry import SEARCHERS

    return {
        name: OptimizerSpec(name, "ours", _build_ours(name), ("ray",), ("ray",), True,
                            f"ours: {SEARCHERS[name]} via the Ray Searcher interface", concurrent=True)
        for name in SEARCHERS
    }


def _variant(name: str, base: str, description: str, core_options: dict | None = None,
             **kwargs: Any) -> OptimizerSpec:
    return OptimizerSpec(name, "ours", _build_ours(base, core_options, **kwargs), ("ray",), ("ray",), True,
                         f"ours (ablation, only when named): {description}", in_tiers=False, concurrent=True)


# Ablations of our searchers with one option switched: benchmark-only names (not in the
# orchestrator's registry), run only when named with --optimizers, never through Tune.
VARIANTS: dict[str, OptimizerSpec] = {
    "gp-ei-plain": _variant("gp-ei-plain", "gp-ei", "GP-EI with noise='none' (plain EI: incumbent and "
                            "recommendation = best observed)", noise="none"),
    "gp-ei-aei": _variant("gp-ei-aei", "gp-ei", "GP-EI with noisy_acqf='aei' (when noisy: augmented EI, "
                          "Huang et al. 2006)", core_options={"noisy_acqf": "aei"}),
    "gp-ei-nei": _variant("gp-ei-nei", "gp-ei", "GP-EI with noisy_acqf='nei' (when noisy: NEI of Letham "
                          "et al. 2019)", core_options={"noisy_acqf": "nei"}),
    "gp-ei-nei-always": _variant("gp-ei-nei-always", "gp-ei", "GP-EI with noise='noisy' and noisy_acqf='nei' "
                                 "(NEI on every problem, no noise detection)", noise="noisy",
                                 core_options={"noisy_acqf": "nei"}),
    "gp-ei-nei-always-noise4": _variant("gp-ei-nei-always-noise4", "gp-ei", "gp-ei-nei-always with the noise "
                                        "prior log s2_n ~ N(-4, 2)", noise="noisy",
                                        core_options={"noisy_acqf": "nei", "prior": {"noise_loc": -4.0}}),
    "gp-ei-nei-sobol": _variant("gp-ei-nei-sobol", "gp-ei", "GP-EI with noisy_acqf='nei' and Sobol start-up",
                                core_options={"noisy_acqf": "nei"}, startup_design="sobol"),
    "gp-ei-noise4": _variant("gp-ei-noise4", "gp-ei", "GP-EI with the noise prior log s2_n ~ N(-4, 2) "
                             "(default N(-8, 2))", core_options={"prior": {"noise_loc": -4.0}}),
    "gp-ei-noise6": _variant("gp-ei-noise6", "gp-ei", "GP-EI with the noise prior log s2_n ~ N(-6, 2) "
                             "(default N(-8, 2))", core_options={"prior": {"noise_loc": -6.0}}),
    "gp-ei-sobol": _variant("gp-ei-sobol", "gp-ei", "GP-EI with startup_design='sobol' (scrambled-Sobol "
                            "start-up points)", startup_design="sobol"),
    "gp-ei-random": _variant("gp-ei-random", "gp-ei", "GP-EI with startup_design='random' (uniform "
                             "start-up points)", startup_design="random"),
    "gp-ei-nocap": _variant("gp-ei-nocap", "gp-ei", "GP-EI with max_model_points=None (an exact GP on every "
                            "observation, however many)", core_options={"max_model_points": None}),
    "gp-ei-warp": _variant("gp-ei-warp", "gp-ei", "GP-EI with output_warp='half_rank' (the worse half of the "
                           "losses mapped onto a normal tail; BENCHMARKS.md 2026-12-07)",
                           core_options={"output_warp": "half_rank"}),
    "gp-ei-warp-plain": _variant("gp-ei-warp-plain", "gp-ei", "gp-ei-warp with noise='none'", noise="none",
                                 core_options={"output_warp": "half_rank"}),
    "gp-ei-fantasies": _variant("gp-ei-fantasies", "gp-ei", "GP-EI with pending='fantasies' (EI averaged over "
                                "the running trials' outcomes, Snoek et al. 2012)", core_options={"pending": "fantasies"}),
    "kg-warp": _variant("kg-warp", "kg", "KG with output_warp='half_rank' (GP-EI's default)",
                        core_options={"output_warp": "half_rank"}),
    "kg-wide": _variant("kg-wide", "kg", "KG with decision_set='wide' (the candidate set of every step holds "
                        "Sobol points, the mean's minimiser and neighbours of the incumbents; the default "
                        "before C4)", core_options={"decision_set": "wide"}),
    "kg-noise4": _variant("kg-noise4", "kg", "KG with the noise prior log s2_n ~ N(-4, 1), s2_n >= 1e-4 "
                          "(BoTorch's noise prior; default N(-8, 2), s2_n >= 1e-6)",
                          core_options={"prior": {"noise_loc": -4.0, "noise_scale": 1.0, "min_noise": 1e-4}}),
    "kg-hvarfner": _variant("kg-hvarfner", "kg", "KG with BoTorch's priors: lengthscales log l ~ N(sqrt(2) + "
                            "log(D)/2, sqrt(3)) (Hvarfner et al. 2024 as published) and the noise prior of "
                            "kg-noise4", core_options={"prior": {
                                "lengthscale_loc": 2 ** 0.5, "lengthscale_scale": 3 ** 0.5,
                                "noise_loc": -4.0, "noise_scale": 1.0, "min_noise": 1e-4}}),
    "kg-observed": _variant("kg-observed", "kg", "KG with decision_set='observed' (candidate set = the "
                            "evaluated points: KGCP)", core_options={"decision_set": "observed"}),
}


def optimizer_specs() -> dict[str, OptimizerSpec]:
    """Ours first, then our ablation variants, then the peers. A name in two of them is an
    error (names must be unambiguous)."""
    mine = ours()
    clash = sorted((set(mine) & set(PEERS)) | (set(mine) & set(VARIANTS)) | (set(VARIANTS) & set(PEERS)))
    if clash:
        raise ValueError(f"searcher names {clash} clash between the registry, VARIANTS and PEERS; rename one")
    return {**mine, **VARIANTS, **PEERS}


def versions(packages: Sequence[str] = ("ray", "hyperopt", "optuna", "botorch", "gpytorch", "torch",
                                         "numpy", "scipy", "scikit-learn", "coco-experiment", "greenlet")) -> dict[str, str]:
    out = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out
