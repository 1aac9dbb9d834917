"""The console of a tuning run: a progress line, one row per ended trial, the best so far.

Ray Tune's own console (a config box and a result box per trial, a checkpoint line per epoch,
a status table wider than a terminal, repeated warnings) is turned off by default and replaced
by :class:`Console`, a Ray Tune ``Callback``. It works the same under Ray's old and new output
engines (``RAY_AIR_NEW_OUTPUT``): callbacks are called by Tune's controller in both, and Ray's
own reporters are silenced with ``RunConfig(verbose=0)``.

What it prints, never wider than the terminal (``shutil.get_terminal_size``, 80 columns when
stdout is not a terminal): columns are dropped or values abbreviated, lines are never wrapped.

* A header row, then one row per trial that ended: trial, status (``done``, ``early r3``,
  ``FAILED``), iterations, the tuned metric and the trial's hyperparameters (from the trial's
  own config, so our searchers, which give Tune an empty ``param_space``, get columns too;
  values under secret-looking keys as ``***``). Hyperparameters that vary between trials come
  first; the columns that do not fit are dropped (the header says how many).
* ``best`` lines whenever the best value so far improves, with its config.
* A progress line: trials done / running / pending (failed, stopped early), elapsed time and
  the ETA (from ``num_samples``, or from ``time_budget_s`` when that comes first).

On a terminal the progress line is a bar that stays at the bottom (tqdm, which Ray already
depends on: no new dependency; rows are written above it with ``tqdm.write``). Elsewhere (a CI
log, a pipe) there are no escape codes: the progress line is printed as a plain line every
``interval_s`` seconds (15) and after each trial end.

``orchestrator.api.run`` wires it in (:func:`callbacks_for`): ``verbose=1`` (default) this
console, ``verbose=0`` nothing (the caller prints the summary), ``verbose=2`` (or 3) Ray's own
output as before.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from typing import Any, Mapping, TextIO

from ray.tune import Callback

from orchestrator import _ray_private
from orchestrator.outcome import (FAILED, FINISHED, STOP_REASON_KEY, as_number, early_stop_reason,
                                  number_text, short_stop_reason)
from orchestrator.redaction import redact_config

#: Ray's setting that silences "Experiment state snapshotting has been triggered multiple
#: times..." (repeated once per trial checkpoint burst with ``keep_checkpoints``).
SNAPSHOT_WARNING_ENV = "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"
#: Loggers whose warnings repeat during a run (snapshots, slow hooks, syncing); errors still show.
NOISY_LOGGERS = ("ray.tune", "ray.train", "ray.air")

ELLIPSIS = "~"  # one column, plain ASCII: safe in any log encoding
MIN_WIDTH = 40


def terminal_width(stream: TextIO | None = None) -> int:
    """Columns of the terminal (``COLUMNS`` first, as ``shutil`` does); 80 when not a terminal."""
    stream = stream or sys.stdout
    if "COLUMNS" in os.environ or _isatty(stream):
        return max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns)
    return 80


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns with a marker (never wrapped)."""
    text = " ".join(str(text).split()) if "\n" in str(text) else str(text)
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def short_number(value: Any, width: int = 10) -> str:
    """A value in at most ``width`` columns: floats in 4 significant digits, others cut."""
    if isinstance(value, bool) or value is None:
        return fit(str(value), width)
    if isinstance(value, float):
        text = f"{value:.4g}"
        return text if len(text) <= width else fit(f"{value:.2e}", width)
    return fit(str(value), width)


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def flat_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """The config as ``a/b`` keys, values under secret-looking keys redacted."""
    out: dict[str, Any] = {}
    for key, value in (redact_config(config) if not prefix else config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_config(value, name + "/"))
        else:
            out[name] = value
    return out


def config_text(config: Any, width: int) -> str:
    """``k=v k=v ...`` of a (redacted) config in ``width`` columns; values abbreviated."""
    parts = [f"{k.rsplit('/', 1)[-1]}={short_number(v, 12)}" for k, v in sorted(flat_config(config or {}).items())]
    return fit(" ".join(parts), width)


class Console(Callback):
    """A Ray Tune callback that prints the run's progress (see the module docstring).

    Args:
        metric, mode: the tuned metric and its direction.
        num_samples: how many trials the run makes (for the ETA; ``None`` or ``-1``: unknown).
        time_budget_s: the run's time budget, if any (the ETA never exceeds what is left of it).
        stream: where to print (default ``sys.stdout``).
        width: columns (default :func:`terminal_width`).
        tty: live bar (True) or plain periodic lines (False); default: whether ``stream`` is a
            terminal.
        interval_s: plain mode: seconds between two progress lines (and after each trial end).
    """

    def __init__(self, metric: str, mode: str, num_samples: int | None = None,
                 time_budget_s: float | None = None, stream: TextIO | None = None,
                 width: int | None = None, tty: bool | None = None, interval_s: float = 15.0):
        self.metric, self.mode = metric, mode
        self.num_samples = num_samples if num_samples and num_samples > 0 else None
        self.time_budget_s = time_budget_s
        self.stream = stream
        self._width = width
        self.tty = tty
        self.interval_s = float(interval_s)
        self._runtime_reset()

    def _runtime_reset(self) -> None:
        self._start = time.monotonic()
        self._last_line = float("-inf")
        self._last_text = ""
        self._trials: list = []
        self._best: tuple[float, str, dict] | None = None  # (value, trial id, config)
        self._columns: list[str] | None = None
        self._rows = 0
        self._bar = None
        self._ended: set[str] = set()
        # counts(): the trials not seen ended yet, and the tallies of those that have
        self._counted_list: list | None = None
        self._counted_upto = 0
        self._open: list = []
        self._closed = {"done": 0, "failed": 0, "early": 0}

    # Tune pickles callbacks into tuner.pkl: only the settings travel.
    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_") or k == "_width"}
        state["stream"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._runtime_reset()

    # ----- geometry ---------------------------------------------------------------------

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    @property
    def width(self) -> int:
        return max(MIN_WIDTH, self._width or terminal_width(self.out))

    @property
    def live(self) -> bool:
        return _isatty(self.out) if self.tty is None else bool(self.tty)

    # ----- Tune hooks ---------------------------------------------------------------------

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self._runtime_reset()
        if self.num_samples is None and total_num_samples and total_num_samples > 0 \
                and math.isfinite(total_num_samples):
            self.num_samples = int(total_num_samples)
        self._print(fit(f"tuning {self.metric} ({self.mode}) over "
                        f"{self.num_samples or '?'} trials", self.width))

    def on_step_begin(self, iteration: int, trials: list, **info):
        self._trials = trials
        self._progress()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        self._trials = trials
        value = _finite(result.get(self.metric))
        if value is None:
            return
        if self._best is None or (value < self._best[0] if self.mode == "min" else value > self._best[0]):
            changed = self._best is None or self._best[1] != str(trial.trial_id)
            self._best = (value, str(trial.trial_id), dict(getattr(trial, "config", None) or {}))
            if changed:  # a new leader: its config; the progress line follows its value
                self._print(self.best_line())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        self._trial_ended(trials, trial, FINISHED)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self._trial_ended(trials, trial, FAILED)

    def on_experiment_end(self, trials: list, **info):
        self._trials = trials
        self._progress(force=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # ----- lines --------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """``done`` (ended: finished + failed), ``running``, ``paused``, ``pending``, ``failed``,
        ``early`` (stopped early by the scheduler), ``total``.

        Called at every trial end and, live, at every step of Tune's loop: it looks only at the
        trials that had not ended the last time (an ended trial never runs again), so its cost
        follows the trials in flight, not the 10,000 of a long run. Tune's trial list only grows,
        by appending."""
        trials = self._trials
        if trials is not self._counted_list or len(trials) < self._counted_upto:
            self._counted_list, self._counted_upto, self._open = trials, 0, []
            self._closed = {"done": 0, "failed": 0, "early": 0}
        self._open.extend(trials[self._counted_upto:])
        self._counted_upto = len(trials)
        c = {"done": 0, "running": 0, "paused": 0, "pending": 0, "failed": 0, "early": 0}
        still_open = []
        for trial in self._open:
            status = getattr(trial, "status", None)
            if status == FINISHED or status == FAILED:
                self._closed["done"] += 1
                if status == FAILED:
                    self._closed["failed"] += 1
                elif STOP_REASON_KEY in (getattr(trial, "last_result", None) or {}):
                    self._closed["early"] += 1
                continue
            still_open.append(trial)
            if status == "RUNNING":
                c["running"] += 1
            elif status == "PAUSED":
                c["paused"] += 1
            else:
                c["pending"] += 1
        self._open = still_open
        c.update(self._closed)
        total = max(self.num_samples or 0, len(trials))
        c["pending"] += total - len(trials)  # not created yet by the searcher
        c["total"] = total
        return c

    def eta(self, c: dict | None = None) -> float | None:
        c = c or self.counts()
        elapsed = time.monotonic() - self._start
        left_budget = self.time_budget_s - elapsed if self.time_budget_s else None
        estimate = None
        if c["total"] and c["done"]:
            estimate = elapsed / c["done"] * (c["total"] - c["done"])
        if c["total"] and c["done"] >= c["total"]:
            estimate = 0.0
        if left_budget is not None:
            estimate = max(0.0, left_budget) if estimate is None else min(estimate, max(0.0, left_budget))
        return estimate

    def progress_text(self, width: int | None = None, with_best: bool = True) -> str:
        """``12/20 done (1 failed, 3 stopped early), 2 running, 6 pending | 1:02, ETA 0:45 |
        best 0.123``; terser forms when that does not fit ``width``."""
        c = self.counts()
        elapsed, eta = duration(time.monotonic() - self._start), duration(self.eta(c))
        best = f" | best {short_number(self._best[0])}" if with_best and self._best is not None else ""
        candidates = []
        for failed, early, run, pend, clock in (
                ("failed", "stopped early", "running", "pending", f"{elapsed} elapsed, ETA {eta}"),
                ("failed", "early", "running", "pending", f"{elapsed}, ETA {eta}"),
                ("fail", "early", "run", "pend", f"{elapsed} ETA {eta}")):
            extra = ", ".join(f"{c[k]} {name}" for k, name in (("failed", failed), ("early", early)) if c[k])
            parts = [f"{c['done']}/{c['total'] or '?'} done" + (f" ({extra})" if extra else ""),
                     f"{c['running']} {run}", f"{c['pending']} {pend}"]
            if c["paused"]:
                parts.append(f"{c['paused']} paused")
            candidates.append(", ".join(parts) + f" | {clock}")
        for text in candidates:
            for tail in (best, ""):
                if width is None or len(text + tail) <= width:
                    return text + tail
        return fit(candidates[-1], width)

    def best_line(self) -> str:
        value, trial_id, config = self._best
        head = f"best {self.metric}={short_number(value)} trial {_short_id(trial_id)}: "
        flat = flat_config(config)
        order = self._columns if self._columns is not None else self._choose_columns(flat, limit=False)
        keys = [k for k in order if k in flat] + sorted(k for k in flat if k not in order)
        text = " ".join(f"{k.rsplit('/', 1)[-1]}={short_number(flat[k], 12)}" for k in keys)
        return fit(head + text, self.width)

    def header_and_row(self, trial: Any, outcome: str) -> tuple[str | None, str]:
        """The table's header (the first time, or ``None``) and ``trial``'s row."""
        config = flat_config(getattr(trial, "config", None) or {})
        header = None
        if self._columns is None:
            self._columns = self._choose_columns(config)
            header = self._format(["trial", "status", "iter", _short_key(self.metric, 10)]
                                  + [_short_key(k, 10) for k in self._columns])
            dropped = len(config) - len(self._columns)
            if dropped:
                header = fit(header, self.width - len(f" +{dropped}")) + f" +{dropped}"
        last = getattr(trial, "last_result", None) or {}
        cells = [_short_id(str(trial.trial_id)), outcome, short_number(last.get("training_iteration", ""), 5),
                 short_number(last.get(self.metric, ""), 10)]
        cells += [short_number(config.get(k, ""), 10) for k in self._columns]
        return header, self._format(cells)

    _FIXED = (8, 9, 5, 10)  # trial, status, iter, metric

    def _format(self, cells: list[str]) -> str:
        widths = list(self._FIXED) + [10] * (len(cells) - len(self._FIXED))
        text = " ".join(fit(c, w).ljust(w) for c, w in zip(cells, widths)).rstrip()
        return fit(text, self.width)

    def _choose_columns(self, config: dict, limit: bool = True) -> list[str]:
        """Hyperparameters that fit: those that vary between trials first, then constants."""
        seen = [flat_config(getattr(t, "config", None) or {}) for t in self._trials] or [config]
        varying = [k for k in config if len({repr(s.get(k)) for s in seen}) > 1]
        ordered = sorted(varying) + sorted(k for k in config if k not in varying)
        room = (self.width - sum(w + 1 for w in self._FIXED)) // 11
        return ordered[:max(0, room)] if limit else ordered

    def _trial_ended(self, trials: list, trial: Any, status: str) -> None:
        self._trials = trials
        if trial.trial_id in self._ended and status == FINISHED:
            return
        self._ended.add(trial.trial_id)
        reason = (getattr(trial, "last_result", None) or {}).get(STOP_REASON_KEY)
        outcome = "FAILED" if status == FAILED else (f"early {short_stop_reason(reason)}" if reason else "done")
        header, row = self.header_and_row(trial, outcome)
        if header is not None:
            self._print(header)
        self._print(row)
        self._progress(force=True)

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.live:
            self._update_bar()
            return
        if force or now - self._last_line >= self.interval_s:
            stamp = f"[{time.strftime('%H:%M:%S')}] "
            text = self.progress_text(self.width - len(stamp))
            if force and text == self._last_text:
                return  # nothing new since the last line (the end of a run right after a trial end)
            self._last_line, self._last_text = now, text
            self._print(stamp + text)

    def _update_bar(self) -> None:
        from tqdm import tqdm

        c = self.counts()
        width = self.width - 1  # the cursor column: a full-width line would wrap on some terminals
        if self._bar is None:
            self._bar = tqdm(total=c["total"] or None, file=self.out, ncols=width, leave=True,
                             ascii=not _utf8(self.out), dynamic_ncols=False, mininterval=0.5,
                             bar_format="{l_bar}{bar}| {postfix}")
        text = self.progress_text(width - 16)  # room for a bar of 10 columns at least
        head, _, tail = text.partition(" | ")
        bar_room = width - len(head) - len(tail) - 6
        if bar_room < 10:  # no room for a bar: the words matter more
            self._bar.bar_format = "{postfix}"
            self._bar.set_postfix_str(fit(text, width), refresh=False)
        else:
            self._bar.bar_format = "{desc}|{bar}| {postfix}"
            self._bar.set_description_str(head + " ", refresh=False)
            self._bar.set_postfix_str(tail, refresh=False)
        self._bar.total = c["total"] or None
        self._bar.n = c["done"]
        self._bar.refresh()

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)


class StopRecorder(Callback):
    """A Ray Tune callback that records which trials the scheduler stopped early, and why.

    It writes the reason (:func:`early_stop_reason`) into the result Tune marked ``done``
    (Tune lets callbacks change a result in place; the trial's last result and its
    ``result.json`` then hold it) and, for a trial the scheduler stops while it is paused (ASHA
    promotion), into the trial's last result when it completes. Put it before the callbacks
    that read the reason (the MLflow tracker, the console).
    """

    def __init__(self, scheduler: Any, stop: Mapping | None = None):
        self.scheduler = scheduler
        self.stop = dict(stop or {})

    def __getstate__(self) -> dict:  # tuner.pkl: the scheduler travels with Tune's own state
        return {"scheduler": None, "stop": self.stop}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if result.get("done") and STOP_REASON_KEY not in result:
            reason = early_stop_reason(self.scheduler, trial, result)
            if reason:
                result[STOP_REASON_KEY] = reason

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        last = getattr(trial, "last_result", None)
        if isinstance(last, dict) and STOP_REASON_KEY not in last and callable(
                getattr(self.scheduler, "stopped_at_rung", None)):
            rung = self.scheduler.stopped_at_rung(trial.trial_id)
            if rung is not None:
                last[STOP_REASON_KEY] = f"rung {number_text(rung)}"


def _utf8(stream: Any) -> bool:
    return "utf" in str(getattr(stream, "encoding", "") or "").lower()


def _finite(value: Any) -> float | None:
    number = as_number(value)
    return number if number is not None and math.isfinite(number) else None


def _short_id(trial_id: str) -> str:
    """Tune's ids are ``<experiment hex>_<index>``: the index tells trials apart."""
    return trial_id.rsplit("_", 1)[-1] if "_" in trial_id else trial_id[-8:]


def _short_key(key: str, width: int) -> str:
    return fit(key.rsplit("/", 1)[-1], width)


def callbacks_for(verbose: int, *, metric: str, mode: str, num_samples: int | None,
                  time_budget_s: float | None, scheduler: Any, stop: dict | None = None) -> list:
    """The callbacks a run gets for its console and outcomes, and Ray's output turned down.

    Always a :class:`StopRecorder` (first, so that the trackers after it
    see the stop reason); with ``verbose == 1`` also a :class:`Console`. With ``verbose <= 1``
    Ray's repeated warnings are off (:data:`SNAPSHOT_WARNING_ENV`, and Ray's Tune/Train loggers
    show errors only); with ``verbose >= 2`` nothing of Ray's is changed.
    """
    callbacks: list = [StopRecorder(scheduler, stop)]
    if verbose <= 1:
        quiet_ray()
    else:
        unquiet_ray()
    if verbose == 1:
        callbacks.append(Console(metric, mode, num_samples=num_samples, time_budget_s=time_budget_s))
    return callbacks


def callbacks_for_restored(tuner: Any, spec: Any, verbose: int) -> list:
    """:func:`callbacks_for` a Tuner that ``Tuner.restore`` brought back (``tuneorch resume``):
    its scheduler is the restored one, and Ray's verbosity is set as for a new run (the restored
    RunConfig holds the first run's; Ray has no public setter, like the callbacks)."""
    scheduler = _ray_private.scheduler_of(tuner)
    _ray_private.run_config_of(tuner).verbose = ray_verbose(verbose)
    return callbacks_for(verbose, metric=spec.objectives[0], mode=spec.modes[0], num_samples=spec.num_samples,
                         time_budget_s=spec.time_budget_s, scheduler=scheduler, stop=spec.stop)


def ray_verbose(verbose: int) -> int:
    """Ray's own ``RunConfig(verbose=...)``: silent unless ``verbose >= 2`` brings it back."""
    return verbose if verbose >= 2 else 0


_QUIETED: dict[str, int] = {}  # logger name -> its level before quiet_ray()


def quiet_ray() -> None:
    """Turn Ray's repeated warnings off in this process through its own settings."""
    os.environ.setdefault(SNAPSHOT_WARNING_ENV, "0")
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.ERROR:
            _QUIETED.setdefault(name, logger.level)
            logger.setLevel(logging.ERROR)


def unquiet_ray() -> None:
    """Undo :func:`quiet_ray` (a later run of this process asked for Ray's own output)."""
    for name, level in list(_QUIETED.items()):
        logging.getLogger(name).setLevel(level)
        del _QUIETED[name]


# ----- the summary's layout (orchestrator.api.TuningResult.summary) --------------------------

LABEL_MAX = 20


def table(rows: list[tuple], width: int | None = None) -> str:
    """``label | value`` rows between two rules, never wider than ``width`` columns.

    A row is ``(label, value)`` or ``(label, value, how)``: ``how="cut"`` abbreviates a long value
    (config values), ``"wrap"`` (default) continues it on the next lines, indented, broken at
    spaces only (a path, a command or a URL stays whole: one longer than the width is the only
    thing that can exceed it).
    """
    width = max(MIN_WIDTH, width or terminal_width())
    rows = [(str(r[0]), str(r[1]), r[2] if len(r) > 2 else "wrap") for r in rows]
    label_width = min(LABEL_MAX, max((len(label) for label, _, _ in rows), default=0))
    room = width - label_width - 3
    lines = []
    for label, value, how in rows:
        label = fit(label, label_width).ljust(label_width)
        value = " ".join(value.split()) if "\n" in value else value
        if len(value) <= room or how == "cut":
            lines.append(f"{label} | {fit(value, room)}".rstrip())
            continue
        chunks = _wrap(value, room)
        if any(len(chunk) > room for chunk in chunks):  # a long word (a path, a URL): lines of its own
            lines.append(f"{label} |")
            lines.extend(f"  {chunk}" for chunk in _wrap(value, width - 2))
            continue
        lines.append(f"{label} | {chunks[0]}")
        lines.extend(f"{'':{label_width}} | {chunk}" for chunk in chunks[1:])
    rule = "-" * min(width, max((len(line) for line in lines), default=0))
    return "\n".join([rule, *lines, rule])


def registered_model_rows(name: str, version: str | None, alias: str | None, ui_base: str,
                          error: str | None = None) -> list[tuple]:
    """The summary's rows for the model ``register_model`` registered: its name, version and
    alias, how to load it, and its page in the MLflow UI served at ``ui_base`` (the tracking
    server, or ``tuneorch ui``'s address for a database store). With ``error`` (registration
    asked for and failed): one row saying why, nothing to load."""
    if error or not version:
        return [("registered model", f"{name}: not registered ({error or 'no version was created'})")]
    from urllib.parse import quote

    uri = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
    return [
        ("registered model", f"{name} version {version}" + (f", alias {alias}" if alias else "")),
        ("load it with", f"mlflow.pytorch.load_model('{uri}')"),
        ("model page", f"{ui_base.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"),
    ]


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, max(10, width), break_long_words=False, break_on_hyphens=False) or [""]


def shorter_path(path: str) -> str:
    """``path`` relative to the working directory when it lies under it (shorter to print and
    still valid for commands run from here); else as it is."""
    if "://" in path and not path.startswith("file://"):
        return path
    local = path.removeprefix("file://")
    try:
        rel = os.path.relpath(local)
    except ValueError:
        return path
    return rel if not rel.startswith("..") and len(rel) < len(local) else path


def shorter_uri(uri: str) -> str:
    """A ``sqlite:////abs/path`` URI relative to the working directory when shorter."""
    prefix = "sqlite:///"
    if uri.startswith(prefix + "/"):
        rel = shorter_path(uri[len(prefix):])
        if not rel.startswith("/"):
            return prefix + rel
    return uri
