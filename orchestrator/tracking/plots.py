"""The plots of a finished tuning run, drawn from its Parquet tables (:mod:`orchestrator.export`).

``optimization_history``, ``parallel_coordinates``, ``learning_curves`` and, for PBT,
``pbt_lineage``: each ``plot_*`` writes one PNG and raises :class:`NothingToPlot` when the data
holds nothing to show. :mod:`orchestrator.tracking.artifact_log` uploads them to the MLflow
parent run. matplotlib's object API with the Agg canvas: no pyplot, so the user's backend is
untouched.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Sequence

from orchestrator.redaction import is_secret_name


class NothingToPlot(Exception):
    """The data holds nothing to show (e.g. no trial reported the metric)."""


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def creation_order(result: Any, metrics: Any = None) -> list[str]:
    """Trial ids in the order Tune created them: the order of ``result.trials`` (Tune's trial
    list), then any other trial by its first report (Ray 2.60's trial ids are random hex)."""
    ids: list[str] = []
    trials = getattr(result, "trials", None)
    if trials is not None and len(trials) and "trial_id" in trials:
        ids = [str(t) for t in trials["trial_id"] if t is not None]
    if metrics is not None and len(metrics):
        first = metrics.groupby(metrics["trial_id"].astype(str))["timestamp"].min()
        ids += [t for t, _ in sorted(first.items(), key=lambda kv: (kv[1], kv[0])) if t not in ids]
    return list(dict.fromkeys(ids))


def _order_key(order: Sequence[str] | None) -> Callable[[Any], tuple]:
    rank = {t: i for i, t in enumerate(order or [])}
    return lambda trial_id: (rank.get(str(trial_id), len(rank)), str(trial_id))


def _numbers(values) -> "Any":
    import numpy as np
    import pandas as pd

    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _cmap(mode: str):
    from matplotlib import colormaps

    return colormaps["viridis_r" if mode == "min" else "viridis"]  # better = brighter


def plot_optimization_history(trials: Any, metric: str, mode: str, path: str,
                              order: Sequence[str] | None = None) -> None:
    """Each trial's last ``metric`` in creation order (``order``), and the best so far."""
    import numpy as np

    if trials is None or not len(trials) or metric not in trials:
        raise NothingToPlot(f"no trial reported {metric!r}")
    key = _order_key(order)
    frame = trials.iloc[sorted(range(len(trials)), key=lambda i: key(trials["trial_id"].iloc[i]))]
    values = _numbers(frame[metric])
    x = np.arange(1, len(values) + 1)
    finite = np.isfinite(values)
    if not finite.any():
        raise NothingToPlot(f"no trial reported a finite {metric!r}")
    fill = np.inf if mode == "min" else -np.inf
    best = (np.minimum if mode == "min" else np.maximum).accumulate(np.where(finite, values, fill))
    best[~np.isfinite(best)] = np.nan
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    ax.scatter(x[finite], values[finite], s=22, color="C0", label=f"trial ({metric}, last report)")
    if (~finite).any():
        ax.scatter(x[~finite], np.full((~finite).sum(), np.nanmax(values[finite]) if mode == "min"
                                       else np.nanmin(values[finite])),
                   marker="x", color="grey", label="no finite value")
    ax.step(x, best, where="post", color="C3", lw=2, label=f"best so far ({mode})")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial (creation order)")
    ax.set_ylabel(metric)
    overall = np.nanmin(best) if mode == "min" else np.nanmax(best)
    ax.set_title(f"Optimisation history: {len(values)} trials, best {metric} = {overall:.4g}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path)


def plot_pareto_front(trials: Any, objectives: Sequence[str], modes: Sequence[str], path: str) -> None:
    """The trials in objective space, by Pareto rank (the ``pareto_rank`` and ``feasible``
    columns of the trials table). Two objectives: a scatter with the front joined as a staircase,
    dominated trials lighter by rank, infeasible ones as grey crosses. Three or more: parallel
    coordinates of the objectives (each scaled to its range, the better end at the bottom), the
    front in colour over the rest in grey."""
    import numpy as np

    if trials is None or not len(trials) or "pareto_rank" not in trials:
        raise NothingToPlot("no trial has a Pareto rank")
    missing = [o for o in objectives if o not in trials]
    if missing:
        raise NothingToPlot(f"no trial reported {missing}")
    Y = np.column_stack([_numbers(trials[o]) for o in objectives])
    rank = np.array([float(r) if r is not None and r == r else np.nan for r in trials["pareto_rank"]], dtype=float)
    feasible = np.array([bool(f) for f in trials["feasible"]]) if "feasible" in trials else np.isfinite(rank)
    counted = np.all(np.isfinite(Y), axis=1)
    front = counted & (rank == 0)
    if not front.any():
        raise NothingToPlot("no feasible trial reported every objective")
    ranked = counted & np.isfinite(rank)
    top = max(1.0, float(np.nanmax(rank[ranked])))
    if len(objectives) == 2:
        fig = _figure(6.5, 5)
        ax = fig.add_subplot()
        grey = counted & ~feasible
        if grey.any():
            ax.scatter(Y[grey, 0], Y[grey, 1], marker="x", color="grey", s=22, label="infeasible")
        others = ranked & ~front
        if others.any():
            ax.scatter(Y[others, 0], Y[others, 1], c=rank[others], cmap="Blues_r", vmin=0, vmax=top * 1.4,
                       s=22, label="dominated (darker: lower rank)")
        order = np.argsort(Y[front, 0] if modes[0] == "min" else -Y[front, 0], kind="stable")
        fx, fy = Y[front, 0][order], Y[front, 1][order]
        ax.step(fx, fy, where="post", color="C3", lw=1.5)
        ax.scatter(fx, fy, color="C3", s=36, zorder=3, label=f"Pareto front ({int(front.sum())})")
        ax.set_xlabel(f"{objectives[0]} ({modes[0]})")
        ax.set_ylabel(f"{objectives[1]} ({modes[1]})")
    else:
        lo, hi = np.nanmin(Y[counted], axis=0), np.nanmax(Y[counted], axis=0)
        scaled = (Y - lo) / np.where(hi > lo, hi - lo, 1.0)
        scaled[:, [j for j, m in enumerate(modes) if m == "max"]] *= -1
        scaled[:, [j for j, m in enumerate(modes) if m == "max"]] += 1  # better end at the bottom
        fig = _figure(max(6.0, 1.8 * len(objectives) + 2), 4.5)
        ax = fig.add_subplot()
        xs = np.arange(len(objectives))
        for i in np.flatnonzero(counted & ~front):
            ax.plot(xs, scaled[i], color="lightgrey" if feasible[i] else "mistyrose", lw=1)
        for i in np.flatnonzero(front):
            ax.plot(xs, scaled[i], color="C3", lw=1.6, marker="o", ms=3)
        for j in xs:
            ax.axvline(j, color="black", lw=0.8)
            ax.text(j + 0.03, 0.0, f"{lo[j] if modes[j] == 'min' else hi[j]:.4g}", fontsize=7, va="bottom")
            ax.text(j + 0.03, 1.0, f"{hi[j] if modes[j] == 'min' else lo[j]:.4g}", fontsize=7, va="top")
        ax.set_xticks(xs, [f"{o} ({m})" for o, m in zip(objectives, modes)], rotation=20, ha="right", fontsize=8)
        ax.set_yticks([])
        ax.plot([], [], color="C3", label=f"Pareto front ({int(front.sum())})")
        ax.plot([], [], color="lightgrey", label="dominated")
    ax.set_title(f"Pareto front: {int(front.sum())} of {int(counted.sum())} trials "
                 f"({int((counted & ~feasible).sum())} infeasible)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path)


def _axis(values: Any, name: str, space_row: dict | None) -> dict | None:
    """Positions in [0, 1] (NaN when missing) and tick labels of one parallel-coordinates axis."""
    import numpy as np
    import pandas as pd

    series = pd.Series(list(values), dtype=object)
    present = series.notna() & series.map(lambda v: not (isinstance(v, float) and math.isnan(v)))
    series = series.map(lambda v: json.dumps(v, default=str) if isinstance(v, (list, dict))
                        else v.tolist() if hasattr(v, "tolist") and not np.isscalar(v) else v)
    kept = series[present]
    if kept.map(str).nunique() <= 1:
        return None  # constant (or empty): nothing to compare
    numeric = (space_row or {}).get("type") != "categorical" and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in kept)
    positions = np.full(len(series), np.nan)
    if numeric:
        raw = kept.astype(float).to_numpy()
        log = bool(space_row and space_row.get("log")) and (raw > 0).all()
        scaled = np.log10(raw) if log else raw
        lo, hi = float(np.min(scaled)), float(np.max(scaled))
        positions[present.to_numpy()] = (scaled - lo) / (hi - lo)
        ticks = [(0.0, f"{np.min(raw):.3g}"), (1.0, f"{np.max(raw):.3g}")]
        mid = 10 ** ((lo + hi) / 2) if log else (lo + hi) / 2
        ticks.append((0.5, f"{mid:.3g}"))
        label = f"{name} (log)" if log else name
    else:
        labels = kept.map(str)
        order = list(dict.fromkeys(str(c) for c in (space_row or {}).get("choices", [])))
        order = [c for c in order if c in set(labels)] + sorted(set(labels) - set(order))
        place = {c: (i / (len(order) - 1) if len(order) > 1 else 0.5) for i, c in enumerate(order)}
        positions[present.to_numpy()] = labels.map(place).to_numpy(dtype=float)
        ticks = [(place[c], c[:18]) for c in order]
        label = name
    return {"label": label, "pos": positions, "ticks": ticks}


def plot_parallel_coordinates(trials: Any, metric: str, mode: str, path: str,
                              space: Mapping[str, dict] | None = None) -> None:
    """One line per trial through its config values, coloured by its last ``metric``."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if trials is None or not len(trials):
        raise NothingToPlot("no trials")
    space = space or {}
    axes = []
    for column in trials.columns:
        if column.startswith("config/") and not is_secret_name(column):
            name = column[len("config/"):]
            axis = _axis(trials[column], name, space.get(name))
            if axis is not None:
                axes.append(axis)
    values = _numbers(trials[metric]) if metric in trials else np.full(len(trials), np.nan)
    finite = np.isfinite(values)
    if finite.any():
        lo, hi = float(values[finite].min()), float(values[finite].max())
        span = (hi - lo) or 1.0
        metric_pos = np.where(finite, (values - lo) / span if hi > lo else 0.5, np.nan)
        axes.append({"label": metric, "pos": metric_pos,
                     "ticks": [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")] if hi > lo else [(0.5, f"{lo:.4g}")]})
    if not axes:
        raise NothingToPlot("every config value is the same and no metric was reported")
    fig = _figure(max(6.0, 1.6 * len(axes) + 2), 4.5)
    ax = fig.add_subplot()
    cmap = _cmap(mode)
    norm = Normalize(vmin=values[finite].min(), vmax=values[finite].max()) if finite.any() else None
    xs = np.arange(len(axes))
    ys = np.array([a["pos"] for a in axes]).T  # trial x axis
    better_last = np.argsort(np.where(finite, values, np.inf if mode == "max" else -np.inf))
    if mode == "min":
        better_last = better_last[::-1]
    # One LineCollection and one scatter for all trials, better ones drawn last (on top).
    from matplotlib.collections import LineCollection

    colors = [cmap(norm(values[i])) if finite[i] and norm is not None else "lightgrey" for i in better_last]
    ax.add_collection(LineCollection([np.column_stack([xs, ys[i]]) for i in better_last], colors=colors,
                                     linewidths=1.4, alpha=0.85))
    ax.scatter(np.tile(xs, len(better_last)), ys[better_last].ravel(), s=6,
               c=[c for c in colors for _ in xs], alpha=0.85, zorder=3)
    for j, axis in enumerate(axes):
        ax.axvline(j, color="black", lw=0.8)
        for pos, text in axis["ticks"]:
            ax.text(j + 0.03, pos, text, fontsize=7, va="center", ha="left",
                    bbox={"facecolor": "white", "alpha": 0.6, "lw": 0, "pad": 0.5})
    ax.set_xticks(xs, [a["label"] for a in axes], rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlim(-0.2, len(axes) - 0.5)
    ax.set_title(f"Parallel coordinates: {len(trials)} trials, colour = {metric} (last report)")
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    fig.savefig(path)


def plot_learning_curves(metrics: Any, metric: str, mode: str, path: str,
                         best_trial: str | None = None, order: Sequence[str] | None = None) -> None:
    """``metric`` against ``training_iteration`` for every trial (the best one in black)."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if metrics is None or not len(metrics):
        raise NothingToPlot("no metrics reported")
    rows = metrics[metrics["key"].astype(str) == metric]
    if not len(rows):
        raise NothingToPlot(f"no trial reported {metric!r}")
    # A PBT clone reports the steps after the cloned checkpoint again: keep the latest. One sort of
    # all rows, then a split per trial (a groupby per trial cost seconds at 10,000 trials).
    rows = rows.assign(trial_id=rows["trial_id"].astype(str))
    by = ["trial_id", "step", "timestamp"] if "timestamp" in rows else ["trial_id", "step"]
    rows = rows.sort_values(by, kind="stable").drop_duplicates(["trial_id", "step"], keep="last")
    ids = rows["trial_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    bounds = np.r_[starts, len(ids)]
    steps_all, values_all = rows["step"].to_numpy(dtype=float), rows["value"].to_numpy(dtype=float)
    curves = {ids[a]: (steps_all[a:b], values_all[a:b]) for a, b in zip(bounds[:-1], bounds[1:])}
    finals = {t: (v[np.isfinite(v)][-1] if np.isfinite(v).any() else np.nan) for t, (_, v) in curves.items()}
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    few = len(curves) <= 10
    finite = [v for v in finals.values() if np.isfinite(v)]
    cmap = _cmap(mode)
    norm = Normalize(vmin=min(finite), vmax=max(finite)) if finite and not few else None
    # Beyond a few trials the curves are one LineCollection: one artist instead of one per trial
    # (10,000 trials took minutes as separate lines; issue #21).
    segments, colors = [], []
    for k, trial_id in enumerate(sorted(curves, key=_order_key(order))):
        steps, values = curves[trial_id]
        is_best = trial_id == str(best_trial)
        if is_best:
            color = "black"
        elif norm is not None and np.isfinite(finals[trial_id]):
            color = cmap(norm(finals[trial_id]))
        else:
            color = f"C{k % 10}" if few else "lightgrey"
        if few or is_best:
            ax.plot(steps, values, color=color, lw=2.2 if is_best else 1.1, alpha=0.9,
                    marker="o" if len(steps) <= 30 else None, ms=3,
                    label=(f"{trial_id} (best)" if is_best else trial_id) if few or is_best else None,
                    zorder=3 if is_best else 2)
        else:
            segments.append(np.column_stack([steps, values]))
            colors.append(color)
    if segments:
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segments, colors=colors, linewidths=1.1, alpha=0.9, zorder=2))
        ax.autoscale_view()
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training_iteration")
    ax.set_ylabel(metric)
    ax.set_title(f"Learning curves: {len(curves)} trials")
    ax.grid(alpha=0.3)
    if few or best_trial:
        ax.legend(fontsize=7, loc="best")
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"{metric} (last report)")
    fig.savefig(path)


def plot_pbt_lineage(lineage: list[dict], metrics: Any, metric: str | None, mode: str,
                     path: str, order: Sequence[str] | None = None) -> None:
    """One row per trial over training_iteration (dots coloured by ``metric``); per exploit an
    arrow from the donor to the target at the step of the cloned checkpoint (where the target
    continues), an x at the step where the target was exploited, and the config changes."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    trial_ids = set()
    for record in lineage:
        trial_ids.update((record["target"], record["donor"]))
    rows = None
    if metrics is not None and len(metrics) and metric:
        rows = metrics[metrics["key"].astype(str) == metric]
        trial_ids.update(rows["trial_id"].astype(str))
    order = sorted(trial_ids, key=_order_key(order))
    y = {t: i for i, t in enumerate(order)}
    fig = _figure(8, max(3.0, 0.45 * len(order) + 1.5))
    ax = fig.add_subplot()
    cmap, norm = _cmap(mode), None
    if rows is not None and len(rows):
        values = rows["value"].to_numpy(dtype=float)
        finite = np.isfinite(values)
        if finite.any():
            norm = Normalize(vmin=values[finite].min(), vmax=values[finite].max())
        for trial_id, group in rows.groupby(rows["trial_id"].astype(str), sort=False):
            steps, vals = group["step"].to_numpy(dtype=float), group["value"].to_numpy(dtype=float)
            ax.hlines(y[trial_id], steps.min(), steps.max(), color="lightgrey", lw=1, zorder=1)
            ok = np.isfinite(vals)
            ax.scatter(steps[ok], np.full(ok.sum(), y[trial_id]), c=vals[ok], cmap=cmap, norm=norm,
                       s=18, zorder=2)
    label_exploits = len(lineage) <= 40
    for record in lineage:
        step = _as_float(record["step"])
        donor_step = _as_float(record["donor_step"], step)
        if step is None:
            continue
        # the target continues from the donor's checkpoint: arrow at donor_step; x where it was
        # exploited (its later reports repeat the steps in between)
        target, donor = y[record["target"]], y[record["donor"]]
        ax.annotate("", xy=(donor_step, target), xytext=(donor_step, donor),
                    arrowprops={"arrowstyle": "->", "color": "C3", "lw": 1.3}, zorder=3)
        if step != donor_step:
            ax.plot([donor_step, step], [target, target], color="C3", lw=0.8, ls=":", zorder=3)
            ax.scatter([step], [target], marker="x", color="C3", s=30, zorder=4)
        if label_exploits:
            ax.text(donor_step, target + 0.18, _changes(record["old_config"], record["new_config"]),
                    fontsize=6, color="C3", ha="center", va="bottom")
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_xlabel("training_iteration")
    n = len(lineage)
    ax.set_title(f"PBT lineage: {n} exploit{'' if n == 1 else 's'} (arrow: donor -> target, "
                 f"x: exploited at)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    fig.savefig(path)


def _as_float(value: Any, default: float | None = None) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _changes(old: Mapping, new: Mapping, limit: int = 3) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)[:10]

    keys = [k for k in new if old.get(k) != new[k]]
    text = ", ".join(f"{k}: {fmt(old.get(k))}->{fmt(new[k])}" for k in keys[:limit])
    return text + (f" +{len(keys) - limit}" if len(keys) > limit else "")
