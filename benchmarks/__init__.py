"""Benchmark harness: this project's searchers against their peers, side by side.

Layout (every module imports Ray/peers lazily, so ``problems`` and ``report`` work without them):

* :mod:`benchmarks.problems`  - the problems: a space template, a noise-free objective, the known
  optimum, optional observation noise (the TRUE value stays available), tie tolerance.
* :mod:`benchmarks.peers`     - one ask/tell adapter per optimiser: every searcher of our registry
  (driven through Ray's ``Searcher`` interface, no cluster) and the peers through their native APIs
  (hyperopt TPE, Optuna TPE and GP, BoTorch qLogNEI and qKG), each with its version.
* :mod:`benchmarks.harness`   - runs (problem, optimiser, seed) sequentially, records every
  evaluation, its CPU cost and the recommendation at 25/50/100% of the budget; measures the
  suggestion cost at fixed history sizes.
* :mod:`benchmarks.tune_mode` - the same searchers through real Tune with K concurrent trials, and
  the orchestration-overhead ratio against Tune's default generator + FIFO.
* :mod:`benchmarks.report`    - the statistics (regret, normalised regret, W/T/L) and the Markdown.
* :mod:`benchmarks.suites`    - the quick and full tiers.

Run ``python -m benchmarks --help``; see BENCHMARKS.md at the repository root.
"""
