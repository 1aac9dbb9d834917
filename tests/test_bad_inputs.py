"""A table of bad inputs, through every door: ``orchestrator.tune(...)``, ``ExperimentSpec.from_dict``,
YAML files and ``--set`` overrides to ``tuneorch validate`` and ``tuneorch run`` (in-process).

Each one must be refused before Ray starts (``cluster.connect`` raises here: these tests share a
pytest process with the Ray tests, so ``ray.is_initialized()`` says nothing), as a
``TuneorchError`` in Python and as ``tuneorch: error: ...`` with exit code 2 and no traceback on
the command line, with a message naming the field and the value received (and the fix where
there is one). ``validate`` and ``run`` must refuse the same specs: they are the same code.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import textwrap

import pytest

import orchestrator
from orchestrator import cluster
from orchestrator.cli import main
from orchestrator.spec import ExperimentSpec, SpecError
from search_algs import Categorical, Float, Int
from search_algs.errors import SpaceError, TuneorchError


def quad(config):  # never runs: every input here is refused first
    from ray import tune

    tune.report({"loss": (config["lr"] - 0.01) ** 2})


@pytest.fixture(autouse=True)
def _ray_must_not_start(monkeypatch):
    def connect(*args, **kwargs):
        raise AssertionError("Ray would start: the input was not refused before cluster.connect")

    monkeypatch.setattr(cluster, "connect", connect)
    monkeypatch.setenv("TUNEORCH_TEST_TOKEN", "set-for-the-secrets-cases")
    monkeypatch.delenv("TUNEORCH_NOT_SET", raising=False)


def api_space():
    return {"lr": Float(1e-3, 0.1, log=True), "units": Int(8, 64), "act": Categorical(["relu", "tanh"]),
            "epochs": 3}


HUGE = 10**5000
_ = ...  # marks "leave the argument out"


# ---- the Python API: orchestrator.tune(**args) -----------------------------------------------------
# (id, arguments changed from a good call, fragments the message must hold)
API_CASES = [
    # basic fields
    ("metric-empty", {"metric": ""}, ["metric", "''"]),
    ("metric-int", {"metric": 3}, ["metric", "3"]),
    ("mode-word", {"mode": "minimize"}, ["mode", "'minimize'", "mode: min"]),
    ("mode-none", {"mode": None}, ["mode", "None"]),
    ("name-slash", {"name": "a/b"}, ["name", "'a/b'", "e.g."]),
    ("name-space", {"name": "my run"}, ["name", "'my run'"]),
    ("num-samples-zero", {"num_samples": 0}, ["num_samples", "positive integer", "got 0"]),
    ("num-samples-neg", {"num_samples": -5}, ["num_samples", "-5"]),
    ("num-samples-float", {"num_samples": 2.5}, ["num_samples", "2.5"]),
    ("num-samples-str", {"num_samples": "10"}, ["num_samples", "'10'"]),
    ("num-samples-bool", {"num_samples": True}, ["num_samples", "True"]),
    ("num-samples-ceiling", {"num_samples": 10**7}, ["num_samples", "at most 1,000,000", "10000000",
                                                      "time_budget_s"]),
    ("num-samples-1e20", {"num_samples": 10**20}, ["num_samples", "100000000000000000000", "time_budget_s"]),
    ("num-samples-5000-digits", {"num_samples": HUGE}, ["num_samples", "5001 digits", "10**40"]),
    ("max-concurrent-zero", {"max_concurrent": 0}, ["max_concurrent", "got 0"]),
    ("max-concurrent-str", {"max_concurrent": "2"}, ["max_concurrent", "'2'"]),
    ("seed-neg", {"seed": -1}, ["seed", "-1", "seed: 0"]),
    ("seed-float", {"seed": 1.5}, ["seed", "1.5"]),
    ("seed-2-64", {"seed": 2**64}, ["seed", "18446744073709551616", "2**63"]),
    ("max-failures", {"max_failures": -2}, ["max_failures", "-2"]),
    ("keep-checkpoints-zero", {"keep_checkpoints": 0}, ["keep_checkpoints", "got 0"]),
    ("keep-checkpoints-str", {"keep_checkpoints": "all"}, ["keep_checkpoints", "'all'"]),
    ("time-budget-neg", {"time_budget_s": -1}, ["time_budget_s", "-1", "e.g."]),
    ("time-budget-inf", {"time_budget_s": math.inf}, ["time_budget_s", "inf", "null"]),
    ("time-budget-nan", {"time_budget_s": math.nan}, ["time_budget_s", "nan"]),
    ("time-budget-str", {"time_budget_s": "1h"}, ["time_budget_s", "'1h'"]),
    ("report-timeout", {"report_timeout_s": -3}, ["report_timeout_s", "-3", "600"]),
    ("cache-results", {"cache_results": "no"}, ["cache_results", "'no'"]),
    ("cache-pbt", {"cache_results": True, "scheduler": "pbt"}, ["cache_results", "pbt", "false"]),
    # the space: numbers
    ("float-inf-width", {"space": {"x": Float(-1e308, 1e308)}}, ["'x'", "width", "-1e+308", "1e+308", "rescale"]),
    ("float-inf-bound", {"space": {"x": Float(0, math.inf)}}, ["'x'", "'high'", "inf", "finite"]),
    ("float-nan-bound", {"space": {"x": Float(math.nan, 1)}}, ["'x'", "'low'", "nan"]),
    ("float-swapped", {"space": {"x": Float(1.0, 0.1)}}, ["'x'", "low=1.0", "high=0.1", "swap"]),
    ("float-log-zero", {"space": {"x": Float(0.0, 1.0, log=True)}}, ["'x'", "low > 0", "low=0.0"]),
    ("float-step-zero", {"space": {"x": Float(0, 1, step=0)}}, ["'x'", "step", "0"]),
    ("float-step-wide", {"space": {"x": Float(0, 1, step=5)}}, ["'x'", "step=5", "smaller step"]),
    ("int-1e20", {"space": {"n": Int(0, 10**20)}}, ["'n'", "'high'", "100000000000000000000", "2**53"]),
    ("int-neg-huge", {"space": {"n": Int(-(10**17), 0)}}, ["'n'", "'low'", "-100000000000000000", "2**53"]),
    ("int-5000-digits", {"space": {"n": Int(0, HUGE)}}, ["'n'", "'high'", "5001 digits"]),
    ("int-float-bound", {"space": {"n": Int(0, 2.5)}}, ["'n'", "'high'", "2.5", "whole number"]),
    ("choice-empty", {"space": {"c": Categorical([])}}, ["'c'", "non-empty", "got ()"]),
    ("choice-weights", {"space": {"c": Categorical([1, 2], weights=[1, -1])}}, ["'c'", "weights", "-1.0"]),
    ("only-constants", {"space": {"epochs": 3}}, ["space", "no parameter to tune", "add at least one"]),
    ("dict-float-10e400", {"space": {"x": {"type": "float", "low": 0, "high": 10**400}}},
     ["space.x.high", "401 digits", "10**40"]),
    ("dict-int-1e17", {"space": {"x": {"type": "int", "low": 0, "high": 10**17}}},
     ["'x'", "'high'", "100000000000000000"]),
    # the space: parameter specs that are not quite one (never a constant dict)
    ("spec-type-floatt", {"space": {"x": {"type": "floatt", "low": 0, "high": 1}}},
     ["'x'", "'floatt'", "did you mean type: float"]),
    ("spec-type-Float", {"space": {"x": {"type": "Float", "low": 0, "high": 1}}}, ["'x'", "'Float'", "type: float"]),
    ("spec-type-intt", {"space": {"x": {"type": "intt", "low": 0, "high": 9}}}, ["'x'", "'intt'", "type: int"]),
    ("spec-type-choise", {"space": {"x": {"type": "choise", "values": [1, 2]}}}, ["'x'", "'choise'", "type: choice"]),
    ("spec-type-normal", {"space": {"x": {"type": "normal", "low": 0, "high": 1}}},
     ["'x'", "'normal'", "known types"]),
    ("spec-type-number", {"space": {"x": {"type": 3, "low": 0, "high": 1}}}, ["'x'", "unknown type 3"]),
    ("spec-key-typ", {"space": {"x": {"typ": "float", "low": 0, "high": 1}}}, ["'x'", "'typ'", "type: float"]),
    ("spec-key-tpye", {"space": {"x": {"tpye": "int", "low": 0, "high": 9}}}, ["'x'", "'tpye'", "type: int"]),
    ("spec-key-Type", {"space": {"x": {"Type": "choice", "values": [1, 2]}}}, ["'x'", "'Type'", "type: choice"]),
    ("spec-no-type", {"space": {"x": {"low": 0.0, "high": 1.0}}}, ["'x'", "without 'type'", "type: float"]),
    ("spec-no-type-values", {"space": {"x": {"values": [1, 2]}}}, ["'x'", "without 'type'", "type: choice"]),
    ("spec-nested-typo", {"space": {"opt": {"lr": {"type": "flaot", "low": 0, "high": 1}}, "y": Float(0, 1)}},
     ["'opt/lr'", "'flaot'", "type: float"]),
    ("spec-branch-typo", {"space": {"m": {"type": "choice", "values": [{"d": {"typ": "int", "low": 1, "high": 3}}, 1]}}},
     ["'m[0]/d'", "'typ'", "type: int"]),
    ("spec-unknown-key", {"space": {"x": {"type": "float", "low": 0, "hihg": 1}}}, ["'x'", "'hihg'"]),
    ("spec-missing-high", {"space": {"x": {"type": "float", "low": 0}}}, ["'x'", "needs 'high'"]),
    ("spec-string-bound", {"space": {"x": {"type": "float", "low": "1e-3", "high": 1}}}, ["'x'", "'1e-3'", "1.0e-3"]),
    ("spec-grid-search", {"space": {"g": {"grid_search": [1, 2]}}}, ["'g'", "grid_search", "choice"]),
    ("spec-choice-no-values", {"space": {"c": {"type": "choice"}}}, ["'c'", "needs 'values'"]),
    ("space-function", {"space": {"x": Float(0, 1), "f": print}}, ["'f'", "function"]),
    # credentials in the config
    ("secret-constant", {"space": {**api_space(), "api_key": "sk-live-123"}}, ["space.api_key", "credential",
                                                                              "secrets: [API_KEY]", "os.environ"]),
    ("secret-password-choice", {"space": {**api_space(), "password": Categorical(["a1", "b2"])}},
     ["space.password", "among the choices", "secrets: [PASSWORD]"]),
    ("secret-nested", {"space": {**api_space(), "db": {"password": "hunter2"}}}, ["space.db.password", "secrets:"]),
    ("secret-camel", {"space": {**api_space(), "hfToken": "hf_abc"}}, ["space.hfToken", "secrets: [HFTOKEN]"]),
    ("secret-in-list", {"space": {**api_space(), "auth": ["user", "pw"]}}, ["space.auth", "credential"]),
    # secrets (environment variable names)
    ("secrets-string", {"secrets": "TUNEORCH_TEST_TOKEN"}, ["secrets", "'TUNEORCH_TEST_TOKEN'", "list"]),
    ("secrets-missing-var", {"secrets": ["TUNEORCH_NOT_SET"]}, ["secrets", "'TUNEORCH_NOT_SET'", "not set", "export"]),
    ("secrets-bad-name", {"secrets": ["1ABC"]}, ["secrets", "'1ABC'", "environment variable name"]),
    ("secrets-dash", {"secrets": ["MY-KEY"]}, ["secrets", "'MY-KEY'", "e.g. secrets: [API_KEY]"]),
    ("secrets-value-not-name", {"secrets": ["sk live 123"]}, ["secrets", "'sk live 123'", "never their values"]),
    ("secrets-int", {"secrets": [5]}, ["secrets", "5"]),
    ("secrets-dupe", {"secrets": ["TUNEORCH_TEST_TOKEN", "TUNEORCH_TEST_TOKEN"]}, ["secrets", "twice",
                                                                                   "TUNEORCH_TEST_TOKEN"]),
    ("secrets-mapping", {"secrets": {"A": "b"}}, ["secrets", "{'A': 'b'}"]),
    # points_to_evaluate against the space
    ("points-unknown-key", {"points_to_evaluate": [{"lrr": 0.01}]}, ["points_to_evaluate[0]", "'lrr'", "did you mean 'lr'"]),
    ("points-unknown-key-2", {"points_to_evaluate": [{"lr": 0.01}, {"unit": 16}]},
     ["points_to_evaluate[1]", "'unit'", "did you mean 'units'"]),
    ("points-far-key", {"points_to_evaluate": [{"zzz": 1}]}, ["points_to_evaluate[0]", "'zzz'", "drop it"]),
    ("points-above", {"points_to_evaluate": [{"lr": 1.0}]}, ["points_to_evaluate[0]", "'lr'", "1.0", "inside the bounds"]),
    ("points-below-int", {"points_to_evaluate": [{"units": 4}]}, ["points_to_evaluate[0]", "'units'", "4", "[8, 64]"]),
    ("points-int-frac", {"points_to_evaluate": [{"units": 8.5}]}, ["points_to_evaluate[0]", "'units'", "8.5", "whole"]),
    ("points-choice", {"points_to_evaluate": [{"act": "gelu"}]}, ["points_to_evaluate[0]", "'act'", "'gelu'",
                                                                  "['relu', 'tanh']"]),
    ("points-string-number", {"points_to_evaluate": [{"lr": "0.01"}]}, ["points_to_evaluate[0]", "'lr'", "'0.01'"]),
    ("points-nan", {"points_to_evaluate": [{"lr": math.nan}]}, ["points_to_evaluate[0]", "'lr'", "nan"]),
    ("points-constant", {"points_to_evaluate": [{"epochs": 5}]}, ["points_to_evaluate[0]", "'epochs'", "5",
                                                                  "constant 3"]),
    ("points-not-list", {"points_to_evaluate": {"lr": 0.01}}, ["points_to_evaluate", "{'lr': 0.01}", "list"]),
    ("points-string", {"points_to_evaluate": "lr=0.01"}, ["points_to_evaluate", "'lr=0.01'"]),
    ("points-item-list", {"points_to_evaluate": [[0.01]]}, ["points_to_evaluate[0]", "[0.01]", "mapping"]),
    ("points-too-many", {"points_to_evaluate": [{"lr": 0.01}] * 3, "num_samples": 2},
     ["points_to_evaluate", "3 points", "num_samples is 2", "at least 3"]),
    # stop
    ("stop-training-iterations", {"stop": {"training_iterations": 5}}, ["stop.training_iterations", "'training_iteration'"]),
    ("stop-time-total", {"stop": {"time_total": 60}}, ["stop.time_total", "'time_total_s'"]),
    ("stop-metric-typo", {"stop": {"los": 0.1}}, ["stop.los", "did you mean 'loss'"]),
    ("stop-training-iter", {"stop": {"training_iter": 5}}, ["stop.training_iter", "'training_iteration'"]),
    ("stop-value-str", {"stop": {"training_iteration": "10"}}, ["stop.training_iteration", "'10'", "number"]),
    ("stop-value-bool", {"stop": {"training_iteration": True}}, ["stop.training_iteration", "True"]),
    ("stop-value-none", {"stop": {"training_iteration": None}}, ["stop.training_iteration", "None"]),
    ("stop-value-nan", {"stop": {"loss": math.nan}}, ["stop.loss", "nan"]),
    ("stop-value-list", {"stop": {"training_iteration": [10]}}, ["stop.training_iteration", "[10]"]),
    ("stop-not-mapping", {"stop": 10}, ["stop", "10", "training_iteration"]),
    ("stop-key-int", {"stop": {1: 10}}, ["stop", "1", "result keys"]),
    # tracking_uri
    ("uri-htp", {"tracking_uri": "htp://host:5000"}, ["tracking_uri", "htp:", "'htp://host:5000'", "http://"]),
    ("uri-missing-colon", {"tracking_uri": "http//localhost:5000"}, ["tracking_uri", "'http//localhost:5000'", "schemes"]),
    ("uri-plain-path", {"tracking_uri": "mlruns"}, ["tracking_uri", "'mlruns'", "sqlite:///"]),
    ("uri-ftp", {"tracking_uri": "ftp://host/x"}, ["tracking_uri", "ftp:", "schemes"]),
    ("uri-no-host", {"tracking_uri": "http://"}, ["tracking_uri", "'http://'", "no host"]),
    ("uri-port-text", {"tracking_uri": "http://host:abc"}, ["tracking_uri", "'http://host:abc'", "malformed"]),
    ("uri-port-big", {"tracking_uri": "http://host:99999"}, ["tracking_uri", "99999"]),
    ("uri-sqlite-two-slashes", {"tracking_uri": "sqlite://runs.db"}, ["tracking_uri", "'sqlite://runs.db'", "sqlite:///"]),
    ("uri-space", {"tracking_uri": " http://host:5000"}, ["tracking_uri", "' http://host:5000'", "without spaces"]),
    ("uri-int", {"tracking_uri": 5000}, ["tracking_uri", "5000"]),
    ("uri-s3", {"tracking_uri": "s3://bucket/mlflow"}, ["tracking_uri", "s3:", "schemes"]),
    ("uri-postgres-no-host", {"tracking_uri": "postgresql:///db"}, ["tracking_uri", "'postgresql:///db'", "no host"]),
    # storage_path
    ("storage-empty", {"storage_path": ""}, ["storage_path", "''", "./runs"]),
    ("storage-int", {"storage_path": 5}, ["storage_path", "5"]),
    ("storage-nul", {"storage_path": "runs\x00x"}, ["storage_path", "'runs\\x00x'"]),
    ("storage-ftp", {"storage_path": "ftp://host/runs"}, ["storage_path", "'ftp://host/runs'", "s3://"]),
    ("storage-s3-no-bucket", {"storage_path": "s3://"}, ["storage_path", "'s3://'", "bucket"]),
    ("storage-under-file", {"storage_path": "/dev/null/runs"}, ["storage_path", "'/dev/null/runs'", "a file"]),
    ("storage-is-file", {"storage_path": "/dev/null"}, ["storage_path", "'/dev/null'", "not a directory"]),
    # searcher options (built during validation)
    ("tpe-typo", {"search": "tpe", "search_options": {"n_startp": 3}}, ["search_options.n_startp", "'tpe'",
                                                                         "did you mean 'n_startup'", "docstring"]),
    ("tpe-neg", {"search": "tpe", "search_options": {"n_startup": -1}}, ["search_options.n_startup", "-1", "e.g. 10"]),
    ("tpe-str", {"search": "tpe", "search_options": {"n_startup": "5"}}, ["search_options.n_startup", "'5'"]),
    ("random-leftover", {"search": "random", "search_options": {"n_startup": 6}},
     ["search_options.n_startup", "RandomSearch", "n_startup=6", "search_options={}", "{name: tpe, n_startup: 6}"]),
    ("gp-design", {"search": "gp-ei", "search_options": {"startup_design": "grid"}},
     ["search_options.startup_design", "'grid'", "'sobol'"]),
    ("gp-n-startup", {"search": "gp-ei", "search_options": {"n_startup": -2}}, ["search_options.n_startup", "-2"]),
    ("gp-options-field", {"search": "gp-ei", "search_options": {"options": {"noisy_acq": "nei"}}},
     ["search_options.options", "noisy_acq", "known"]),
    ("gp-options-type", {"search": "gp-ei", "search_options": {"options": 5}}, ["search_options.options", "5"]),
    ("kg-noise", {"search": "kg", "search_options": {"noise": "loud"}}, ["search_options.noise", "'loud'"]),
    ("search-options-seed", {"search": "tpe", "search_options": {"seed": 3}}, ["search_options.seed", "seed=3",
                                                                              "drop it"]),
    ("search-options-list", {"search_options": [1, 2]}, ["search_options", "[1, 2]", "mapping"]),
    ("search-options-key", {"search_options": {"n startup": 3}}, ["search_options", "'n startup'", "identifiers"]),
    ("search-object-options", {"search": "OBJECT", "search_options": {"n_startup": 3}},
     ["search_options", "RandomSearch object", "{'n_startup': 3}", "constructor"]),
    # scheduler options (built during validation)
    ("asha-reduction-factor", {"scheduler": "asha", "scheduler_options": {"reduction_factor": 1}},
     ["scheduler_options", "reduction_factor", "got 1", "eta=2 or more"]),
    ("asha-eta", {"scheduler": "asha", "scheduler_options": {"eta": 1}}, ["scheduler_options.eta", "eta=1", "eta=2"]),
    ("asha-grace", {"scheduler": "asha", "scheduler_options": {"grace_period": 0}}, ["scheduler_options.grace_period", "0"]),
    ("asha-max-t", {"scheduler": "asha", "scheduler_options": {"max_t": 2, "grace_period": 5}},
     ["scheduler_options", "max_t", "grace_period", "raise max_t"]),
    ("asha-variant", {"scheduler": "asha", "scheduler_options": {"variant": "promote"}},
     ["scheduler_options.variant", "'promote'", "'promotion'"]),
    ("asha-brackets", {"scheduler": "asha", "scheduler_options": {"brackets": 0}}, ["scheduler_options.brackets", "0"]),
    ("asha-eta-str", {"scheduler": "asha", "scheduler_options": {"eta": "3"}}, ["scheduler_options", "eta", "'3'"]),
    ("pbt-mutable", {"scheduler": "pbt", "scheduler_options": {"mutable": ["momentum"]}},
     ["scheduler_options.mutable", "'momentum'"]),
    ("pbt-ray-mutations", {"scheduler": "pbt",
                           "scheduler_options": {"hyperparam_mutations": {"lr": [0.1]}, "mutable": ["lr"]}},
     ["scheduler_options.hyperparam_mutations", "already names the parameters", "drop mutable"]),
    ("pbt-quantile", {"scheduler": "pbt", "scheduler_options": {"quantile_fraction": 0.9}},
     ["scheduler_options.quantile_fraction", "0.9", "0.25"]),
    ("pbt-interval", {"scheduler": "pbt", "scheduler_options": {"perturbation_interval": 0}},
     ["scheduler_options.perturbation_interval", "0", "perturbation_interval=4"]),
    ("pbt-resample", {"scheduler": "pbt", "scheduler_options": {"resample_probability": 2}},
     ["scheduler_options.resample_probability", "2"]),
    ("pbt-factors", {"scheduler": "pbt", "scheduler_options": {"perturbation_factors": [0.8, -1]}},
     ["scheduler_options.perturbation_factors", "-1"]),
    ("fifo-options", {"scheduler": "fifo", "scheduler_options": {"max_t": 10}},
     ["scheduler_options", "'fifo'", "{'max_t': 10}", "scheduler_options={}"]),
    ("scheduler-state-path", {"scheduler": "asha", "scheduler_options": {"state_path": "/tmp/x.json"}},
     ["scheduler_options.state_path", "'/tmp/x.json'", "drop it"]),
    ("scheduler-none-options", {"scheduler": None, "scheduler_options": {"eta": 3}},
     ["scheduler_options", "None (FIFO)", "{'eta': 3}"]),
    # names and objects
    ("search-unknown", {"search": "bayes"}, ["search", "'bayes'", "known names", "tpe"]),
    ("scheduler-unknown", {"scheduler": "bohb"}, ["scheduler", "'bohb'", "known names", "hyperband"]),
    ("search-class", {"search": "CLASS"}, ["search", "instance", "RandomSearch(...)"]),
    ("search-int", {"search": 5}, ["search", "int"]),
    ("scheduler-str-int", {"scheduler": 3}, ["scheduler", "int"]),
    # resources
    ("resources-neg", {"resources": {"cpu": -1}}, ["resources.cpu", "-1"]),
    ("resources-zero", {"resources": {"cpu": 0, "gpu": 0}}, ["resources", "cpu=0 and gpu=0"]),
    ("resources-gpu-frac", {"resources": {"gpu": 1.5}}, ["resources.gpu", "1.5"]),
    ("resources-typo", {"resources": {"cpus": 2}}, ["resources", "'cpus'"]),
    ("resources-inf", {"resources": {"cpu": math.inf}}, ["resources.cpu", "inf"]),
    ("resources-memory", {"resources": {"cpu": 1, "memory": -5}}, ["resources.memory", "-5"]),
    ("resources-strategy", {"resources": {"workers": 2, "strategy": "spread"}}, ["resources.strategy", "'spread'"]),
    ("resources-list", {"resources": [1, 0]}, ["resources", "[1, 0]"]),
    # held-out seeds, trainable, register_model
    ("held-out-neg", {"held_out_seeds": [1, -2]}, ["held_out_seeds", "-2"]),
    ("held-out-str", {"held_out_seeds": "101"}, ["held_out_seeds", "'101'"]),
    ("held-out-empty", {"held_out_seeds": []}, ["held_out_seeds", "[]"]),
    ("trainable-int", {"trainable": 5}, ["trainable", "5"]),
    ("trainable-no-colon", {"trainable": "tuneorch_examples.digits_mlp"}, ["trainable", "'tuneorch_examples.digits_mlp'",
                                                                  "package.module:function"]),
    ("trainable-missing-module", {"trainable": "no_such_pkg_xyz:f"}, ["trainable", "'no_such_pkg_xyz'", "PYTHONPATH"]),
    ("register-model-slash", {"register_model": "a/b"}, ["register_model", "'a/b'"]),
    # several objectives and constraints (issue 22)
    ("mo-mode-length", {"metric": ["loss", "units"], "mode": ["min"]},
     ["mode", "2 objectives", "1 modes", "mode: [min, min]"]),
    ("mo-mode-string", {"metric": ["loss", "units"], "mode": "min"}, ["mode", "2 objectives", "mode 'min'"]),
    ("mo-mode-list-one-metric", {"mode": ["min", "max"]}, ["mode", "['min', 'max']", "metric 'loss'"]),
    ("mo-mode-word", {"metric": ["loss", "units"], "mode": ["min", "maximise"]}, ["mode", "'maximise'"]),
    ("mo-duplicate", {"metric": ["loss", "loss"], "mode": ["min", "min"]}, ["metric", "'loss' is listed twice"]),
    ("mo-empty-name", {"metric": ["loss", ""], "mode": ["min", "min"]}, ["metric", "''", "['loss', '']"]),
    ("mo-kg-names-gp-ei", {"metric": ["loss", "units"], "mode": ["min", "min"], "search": "kg"},
     ["search", "'kg'", "several objectives", "['random', 'tpe', 'gp-ei']"]),
    ("mo-kg", {"metric": ["loss", "units"], "mode": ["min", "min"], "search": "kg"}, ["search", "'kg'", "'tpe'"]),
    ("mo-pbt", {"metric": ["loss", "units"], "mode": ["min", "min"], "scheduler": "pbt"},
     ["scheduler", "'pbt'", "['fifo', 'asha']"]),
    ("mo-hyperband", {"metric": ["loss", "units"], "mode": ["min", "min"], "scheduler": "hyperband"},
     ["scheduler", "'hyperband'", "asha"]),
    ("mo-search-object", {"metric": ["loss", "units"], "mode": ["min", "min"], "search": "OBJECT"},
     ["search", "'RandomSearch'", "search: tpe"]),
    ("constraint-kg", {"constraints": ["units <= 32"], "search": "kg"},
     ["search", "'kg'", "constraints ['units <= 32']"]),
    ("constraint-eq", {"constraints": ["memory_gb == 16"]}, ["constraints[0]", "'memory_gb == 16'", "<="]),
    ("constraint-bound", {"constraints": ["units <= 1", "memory_gb <= lots"]},
     ["constraints[1]", "'lots'", "not a number"]),
    ("constraint-not-list", {"constraints": {"memory_gb": 16}}, ["constraints", "{'memory_gb': 16}", "memory_gb <= 16"]),
    ("constraint-int", {"constraints": [16]}, ["constraints[0]", "16", "memory_gb <= 16"]),
    ("select-unknown", {"metric": ["loss", "units"], "mode": ["min", "min"], "select": {"metric": "acc"}},
     ["select", "'acc'", "['loss', 'units']", "knee point"]),
    ("select-one-objective", {"select": {"metric": "loss"}}, ["select", "metric is 'loss'"]),
    ("reference-point-length", {"metric": ["loss", "units"], "mode": ["min", "min"], "reference_point": [1.0]},
     ["reference_point", "[1.0]", "['loss', 'units']"]),
    ("mo-held-out", {"metric": ["loss", "units"], "mode": ["min", "min"], "held_out_seeds": [101]},
     ["held_out_seeds", "one objective"]),
]


def _api_call(changes: dict, tmp_path) -> None:
    from search_algs.random_search import RandomSearch

    args = dict(trainable=quad, space=api_space(), metric="loss", mode="min", tracking_uri="",
                storage_path=str(tmp_path / "runs"), verbose=0)
    args.update(changes)
    if args.get("search") == "OBJECT":
        args["search"] = RandomSearch()
    elif args.get("search") == "CLASS":
        args["search"] = RandomSearch
    orchestrator.tune(**args)


@pytest.mark.parametrize("changes, fragments", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_the_python_api_refuses_before_ray_starts(changes, fragments, tmp_path):
    with pytest.raises(TuneorchError) as info:
        _api_call(changes, tmp_path)
    _assert_names(str(info.value), fragments)
    assert not (tmp_path / "runs").exists(), "nothing is written for a refused input"


# ---- ExperimentSpec.from_dict: the mapping form of YAML ---------------------------------------------

GOOD_DICT = {"trainable": "trainables:slow_steps", "metric": "loss", "mode": "min", "tracking_uri": "",
             "space": {"lr": {"type": "float", "low": 1.0e-3, "high": 0.1, "log": True}, "steps": 3}}

DICT_CASES = [
    ("unknown-field", {"num_sample": 4}, ["'num_sample'", "did you mean 'num_samples'"]),
    ("unknown-field-secret", {"secret": ["A"]}, ["'secret'", "did you mean 'secrets'"]),
    ("unknown-field-far", {"zzzz": 1}, ["'zzzz'", "known fields"]),
    ("search-mapping-no-name", {"search": {"n_startup": 3}}, ["'search'", "needs a 'name'", "{'n_startup': 3}",
                                                              "name: tpe"]),
    ("scheduler-mapping-no-name", {"scheduler": {"max_t": 3}}, ["'scheduler'", "needs a 'name'", "{'max_t': 3}"]),
    ("search-mapping-bad-options", {"search": {"name": "tpe"}, "search_options": 5}, ["search_options", "5"]),
    ("search-mapping-typo", {"search": {"name": "tpe", "n_startp": 2}}, ["search_options.n_startp", "n_startup"]),
    ("scheduler-mapping-typo", {"scheduler": {"name": "asha", "max_tt": 2}}, ["scheduler_options.max_tt", "max_t"]),
    ("missing-metric", {"metric": None}, ["'metric' is required", "val_loss"]),
    ("missing-space", {"space": {}}, ["'space' is required"]),
    ("space-huge-constant", {"space": {"lr": {"type": "float", "low": 0.1, "high": 1}, "n": 10**50}},
     ["space.n", "51 digits", "10**40"]),
    ("not-a-mapping", "STRING", ["spec", "expected a mapping", "'STRING'"]),
    ("mo-modes", {"metric": ["loss", "latency"], "mode": ["min", "min", "max"]}, ["mode", "3 modes"]),
    ("mo-constraint-typo", {"constraints": ["memory_gb =< 16"]}, ["constraints[0]", "'memory_gb =< 16'"]),
]


@pytest.mark.parametrize("changes, fragments", [c[1:] for c in DICT_CASES], ids=[c[0] for c in DICT_CASES])
def test_spec_mappings_are_refused(changes, fragments):
    data = changes if not isinstance(changes, dict) else {**GOOD_DICT, **changes}
    with pytest.raises(TuneorchError) as info:
        ExperimentSpec.from_dict(data)
    _assert_names(str(info.value), fragments)


# ---- YAML files and --set overrides through the CLI ---------------------------------------------------

BASE_YAML = """\
name: bad-inputs
trainable: trainables:slow_steps
metric: loss
mode: min
space:
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  units: {type: int, low: 8, high: 64}
  act: {type: choice, values: [relu, tanh]}
  steps: 3
search: tpe
search_options: {n_startup: 4}
scheduler: {name: asha, max_t: 3}
num_samples: 4
tracking_uri: ''
"""

# (id, YAML text or bytes, fragments)
YAML_CASES = [
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ["spec file", "not UTF-8", "0x89", "YAML text file"]),
    ("latin1", "name: caf\xe9\n".encode("latin-1"), ["spec file", "not UTF-8", "0xe9"]),
    ("nul-bytes", b"name: a\x00b\n", ["spec file", "not valid YAML"]),
    ("empty", "", ["spec file", "is empty", "digits_mlp.yaml"]),
    ("a-list", "- a\n- b\n", ["spec file", "expected a mapping", "list"]),
    ("bad-yaml", "trainable: [unclosed\n", ["spec file", "not valid YAML"]),
    ("tabs", "name: x\n\tmetric: loss\n", ["spec file", "not valid YAML"]),
    ("5000-digit-num-samples", BASE_YAML.replace("num_samples: 4", "num_samples: " + "9" * 5000),
     ["num_samples", "5000 digits", "10**40"]),
    ("5000-digit-bound", BASE_YAML.replace("high: 64", "high: " + "7" * 5000), ["space.units.high", "5000 digits"]),
    ("400-digit-float-bound", BASE_YAML.replace("high: 0.1, log: true", "high: " + "1" * 400),
     ["space.lr.high", "400 digits"]),
    ("39-digit-int-bound", BASE_YAML.replace("high: 64", "high: " + "1" * 39), ["'units'", "'high'", "2**53"]),
    ("1e308-bounds", BASE_YAML.replace("low: 1.0e-3, high: 0.1, log: true", "low: -1.0e+308, high: 1.0e+308"),
     ["'lr'", "width", "-1e+308"]),
    ("inf-bound", BASE_YAML.replace("high: 0.1", "high: .inf"), ["'lr'", "'high'", "inf"]),
    ("type-floatt", BASE_YAML.replace("{type: float,", "{type: floatt,"), ["'lr'", "'floatt'", "type: float"]),
    ("typ-float", BASE_YAML.replace("{type: float,", "{typ: float,"), ["'lr'", "'typ'", "type: float"]),
    ("type-missing", BASE_YAML.replace("{type: int, low: 8, high: 64}", "{low: 8, high: 64}"),
     ["'units'", "without 'type'", "type: int"]),
    ("unknown-field", BASE_YAML + "num_sample: 3\n", ["'num_sample'", "did you mean 'num_samples'"]),
    ("stop-typo", BASE_YAML + "stop: {training_iterations: 3}\n", ["stop.training_iterations", "'training_iteration'"]),
    ("points-key", BASE_YAML + "points_to_evaluate: [{lrr: 0.01}]\n", ["points_to_evaluate[0]", "'lrr'", "'lr'"]),
    ("points-value", BASE_YAML + "points_to_evaluate: [{act: gelu}]\n", ["points_to_evaluate[0]", "'gelu'"]),
    ("api-key", BASE_YAML.replace("  steps: 3", "  steps: 3\n  api_key: sk-123"), ["space.api_key", "secrets:"]),
    ("secrets-missing", BASE_YAML + "secrets: [TUNEORCH_NOT_SET]\n", ["secrets", "'TUNEORCH_NOT_SET'", "not set"]),
    ("tracking-uri", BASE_YAML.replace("tracking_uri: ''", "tracking_uri: htp://mlflow:5000"),
     ["tracking_uri", "'htp://mlflow:5000'"]),
    ("random-leftover", BASE_YAML.replace("search: tpe", "search: random"), ["search_options.n_startup", "RandomSearch"]),
    ("asha-eta", BASE_YAML.replace("max_t: 3}", "max_t: 3, eta: 1}"), ["scheduler_options.eta", "eta=1"]),
    ("deep-nesting", "space: " + "[" * 5000 + "]" * 5000 + "\n", ["spec file"]),
    ("mo-mode-length", BASE_YAML.replace("metric: loss\nmode: min", "metric: [loss, units]\nmode: [min]"),
     ["mode", "2 objectives", "1 modes"]),
    ("mo-constraint", BASE_YAML + "constraints: ['units <= sixty']\n", ["constraints[0]", "'sixty'"]),
]


def _write(tmp_path, content, name="spec.yaml"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def _cli_refuses(argv, capsys, fragments):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code} for {argv}: stdout={out!r} stderr={err!r}"
    assert err.startswith("tuneorch: error: "), err
    assert "Traceback" not in err + out
    _assert_names(err, fragments)
    return err


@pytest.mark.parametrize("content, fragments", [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_yaml_files_are_refused_by_validate_and_run_alike(command, content, fragments, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)  # storage_path ./runs lands here; it must stay absent
    _cli_refuses([command, _write(tmp_path, content)], capsys, fragments)
    assert not (tmp_path / "runs").exists()


# (id, --set items on BASE_YAML, fragments)
SET_CASES = [
    ("num-samples-text", ["num_samples=abc"], ["num_samples", "'abc'"]),
    ("num-samples-1e20", ["num_samples=100000000000000000000"], ["num_samples", "100000000000000000000", "at most"]),
    ("num-samples-5000-digits", ["num_samples=" + "1" * 5000], ["num_samples", "5000 digits"]),
    ("num-samples-float", ["num_samples=1e20"], ["num_samples", "'1e20'"]),
    ("search-random", ["search=random"], ["search_options.n_startup", "RandomSearch", "search_options={}"]),
    ("search-unknown", ["search=bayes"], ["search", "'bayes'", "known names"]),
    ("search-options-typo", ["search_options.n_startp=3"], ["search_options.n_startp", "n_startup"]),
    ("search-options-neg", ["search_options.n_startup=-1"], ["search_options.n_startup", "-1"]),
    ("search-options-not-mapping", ["search_options=5"], ["search_options", "5"]),
    ("reduction-factor", ["scheduler.reduction_factor=1.5"], ["scheduler_options", "reduction_factor", "1.5", "eta=2"]),
    ("asha-grace", ["scheduler.grace_period=0"], ["scheduler_options.grace_period", "0"]),
    ("asha-variant", ["scheduler.variant=promo"], ["scheduler_options.variant", "'promo'"]),
    ("pbt-mutable", ["scheduler=pbt", "scheduler_options.mutable=[momentum]"], ["scheduler_options.mutable",
                                                                                "'momentum'"]),
    ("pbt-quantile", ["scheduler=pbt", "scheduler_options.quantile_fraction=0.75"],
     ["scheduler_options.quantile_fraction", "0.75"]),
    ("fifo-with-options", ["scheduler=fifo", "scheduler_options.max_t=3"], ["scheduler_options", "'fifo'", "max_t"]),
    ("stop-typo", ["stop.training_iteratio=5"], ["stop.training_iteratio", "'training_iteration'"]),
    ("stop-metric-typo", ["stop.losss=0.1"], ["stop.losss", "'loss'"]),
    ("stop-text", ["stop.training_iteration=ten"], ["stop.training_iteration", "'ten'"]),
    ("tracking-htp", ["tracking_uri=htp://x:5000"], ["tracking_uri", "'htp://x:5000'"]),
    ("tracking-path", ["tracking_uri=./mlruns"], ["tracking_uri", "'./mlruns'"]),
    ("tracking-port", ["tracking_uri=http://host:port"], ["tracking_uri", "'http://host:port'"]),
    ("storage-ftp", ["storage_path=ftp://x/y"], ["storage_path", "'ftp://x/y'"]),
    ("storage-empty", ["storage_path="], ["storage_path", "None"]),
    ("space-floatt", ["space.lr.type=floatt"], ["'lr'", "'floatt'", "type: float"]),
    ("space-typ", ["space.units={typ: int, low: 8, high: 64}"], ["'units'", "'typ'", "type: int"]),
    ("space-huge-int", ["space.units.high=100000000000000000000"], ["'units'", "'high'", "100000000000000000000"]),
    ("space-inf", ["space.lr.high=.inf"], ["'lr'", "'high'", "inf"]),
    ("space-swapped", ["space.lr.low=1.0"], ["'lr'", "low=1.0", "high=0.1"]),
    ("space-password", ["space.password=hunter2"], ["space.password", "secrets: [PASSWORD]"]),
    ("space-token-choice", ["space.token={type: choice, values: [a, b]}"], ["space.token", "among the choices"]),
    ("points-unknown", ["points_to_evaluate=[{lr: 0.01, unitz: 9}]"], ["points_to_evaluate[0]", "'unitz'",
                                                                        "did you mean 'units'"]),
    ("points-outside", ["points_to_evaluate=[{units: 1000}]"], ["points_to_evaluate[0]", "'units'", "1000"]),
    ("points-constant", ["points_to_evaluate=[{steps: 9}]"], ["points_to_evaluate[0]", "'steps'", "9"]),
    ("secrets-missing", ["secrets=[TUNEORCH_NOT_SET]"], ["secrets", "'TUNEORCH_NOT_SET'"]),
    ("secrets-string", ["secrets=TUNEORCH_TEST_TOKEN"], ["secrets", "'TUNEORCH_TEST_TOKEN'", "list"]),
    ("resources-typo", ["resources.cpus=2"], ["resources", "'cpus'"]),
    ("resources-neg", ["resources.cpu=-1"], ["resources.cpu", "-1"]),
    ("time-budget", ["time_budget_s=.inf"], ["time_budget_s", "inf"]),
    ("mode", ["mode=maximize"], ["mode", "'maximize'"]),
    ("seed", ["seed=-3"], ["seed", "-3"]),
    ("no-equals", ["num_samples"], ["--set", "key=value", "'num_samples'"]),
    ("into-a-scalar", ["num_samples.x=3"], ["--set", "'num_samples'", "not a mapping"]),
    ("unknown-field", ["num_sample=3"], ["'num_sample'", "did you mean 'num_samples'"]),
    ("trainable", ["trainable=trainables:nope"], ["trainable", "'nope'"]),
    ("mo-duplicate", ["metric=[loss, loss]", "mode=[min, min]"], ["metric", "'loss' is listed twice"]),
    ("mo-pbt", ["metric=[loss, units]", "mode=[min, max]", "scheduler=pbt"], ["scheduler", "'pbt'", "asha"]),
    ("constraint-op", ["constraints=['units != 3']"], ["constraints[0]", "'units != 3'"]),
]


@pytest.mark.parametrize("overrides, fragments", [c[1:] for c in SET_CASES], ids=[c[0] for c in SET_CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_set_overrides_are_refused_by_validate_and_run_alike(command, overrides, fragments, tmp_path, capsys,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [command, _write(tmp_path, BASE_YAML)]
    for item in overrides:
        argv += ["--set", item]
    _cli_refuses(argv, capsys, fragments)
    assert not (tmp_path / "runs").exists()


# ---- the README's own example, export, and the error classes ------------------------------------------

def test_the_readme_example_overriding_search_drops_the_searchers_options(capsys):
    """`tuneorch run examples/digits_mlp.yaml --set num_samples=4 --set search=random` passes the
    pre-flight: in the example, TPE's options sit beside its name, so overriding search drops them."""
    assert main(["validate", "examples/digits_mlp.yaml", "--set", "num_samples=4", "--set", "search=random"]) == 0
    assert "valid" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="Ray would start"):
        main(["run", "examples/digits_mlp.yaml", "--set", "num_samples=4", "--set", "search=random"])
    spec = ExperimentSpec.from_yaml("examples/digits_mlp.yaml", ["search=random"])
    assert spec.search == "random" and spec.search_options == {}
    spec = ExperimentSpec.from_yaml("examples/digits_mlp.yaml", ["search.n_startup=3"])
    assert spec.search == "tpe" and spec.search_options == {"n_startup": 3}


@pytest.mark.parametrize("make, fragments", [
    (lambda p: str(p / "no-such-experiment"), ["export", "does not exist", "no-such-experiment", "tuneorch run"]),
    (lambda p: _write(p, "x", "a-file"), ["export", "a-file", "is a file"]),
    (lambda p: (p / "empty").mkdir() or str(p / "empty"), ["export", "empty", "no Tune experiment"]),
], ids=["missing", "file", "not-an-experiment"])
def test_export_of_what_is_not_an_experiment_exits_2_and_creates_nothing(make, fragments, tmp_path, capsys):
    target = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    _cli_refuses(["export", target], capsys, fragments)
    assert sorted(os.listdir(tmp_path)) == before


def test_a_missing_spec_file_and_a_folder_as_spec(tmp_path, capsys):
    _cli_refuses(["validate", str(tmp_path / "nope.yaml")], capsys, ["spec file", "nope.yaml", "does not exist"])
    _cli_refuses(["run", str(tmp_path)], capsys, ["spec file", str(tmp_path), "cannot be read"])


def test_every_user_error_class_derives_from_the_one_root():
    from orchestrator.api import TrialReportError
    from orchestrator.registry import UnknownNameError

    assert orchestrator.TuneorchError is TuneorchError
    for cls, legacy in ((SpecError, ValueError), (SpaceError, ValueError), (UnknownNameError, ValueError),
                        (TrialReportError, RuntimeError)):
        assert issubclass(cls, TuneorchError) and issubclass(cls, legacy), cls
    with pytest.raises(TuneorchError, match="search: unknown searcher 'nope'"):
        orchestrator.registry.searcher_class("nope")


def test_tune_takes_every_spec_field_with_the_same_default():
    params = inspect.signature(orchestrator.tune).parameters
    for f in dataclasses.fields(ExperimentSpec):
        assert f.name in params, f"tune() cannot set {f.name}"
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else inspect.Parameter.empty)
        given = params[f.name].default
        if f.name in ("search_options", "scheduler_options", "resources"):
            continue  # None there means the field's default mapping
        assert given == default, f"tune({f.name}={given!r}) but ExperimentSpec has {default!r}"


def test_good_inputs_pass_the_pre_flight_and_reach_ray(tmp_path, monkeypatch):
    """The checks refuse what is wrong, not what merely looks unusual."""
    from orchestrator import api

    monkeypatch.setattr(api, "check_tracking_reachable", lambda *args, **kwargs: None)  # no server here
    good = [
        {"space": {**api_space(), "opt": {"type": "adam", "lr": 0.1}, "act2": {"type": "relu"}}},
        {"space": {**api_space(), "key_dim": 64, "tokenizer": "bpe"}},
        {"stop": {"training_iteration": 3, "my_custom_metric": 0.5}},
        {"points_to_evaluate": [{"lr": 0.01, "act": "tanh"}, {"units": 8, "epochs": 3}]},
        {"tracking_uri": "http://127.0.0.1:5000"},
        {"tracking_uri": "sqlite:///runs/mlflow.db"},
        {"tracking_uri": "postgresql+psycopg2://user@db:5432/mlflow"},
        {"tracking_uri": "databricks"},
        {"secrets": ["TUNEORCH_TEST_TOKEN"]},
        {"num_samples": 1_000_000, "time_budget_s": 60},
        {"space": {"x": Float(-1e300, 1e300)}},
        {"search": "tpe", "search_options": {"n_startup": 2}},
        {"scheduler": "asha", "scheduler_options": {"max_t": 3, "eta": 3}},
    ]
    for changes in good:
        with pytest.raises(AssertionError, match="Ray would start"):
            _api_call(changes, tmp_path)


def test_the_table_is_large_enough():
    n = len(API_CASES) + len(DICT_CASES) + 2 * len(YAML_CASES) + 2 * len(SET_CASES)
    assert len(API_CASES) + len(DICT_CASES) + len(YAML_CASES) + len(SET_CASES) >= 150, n


def _assert_names(message: str, fragments: list[str]) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
