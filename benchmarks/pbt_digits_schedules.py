"""Is there a learning-rate schedule for PBT to find on the digits MLP? (``BENCHMARKS.md`` F2, F3)

No Ray: trains :func:`benchmarks.pbt.digits_trainable`'s model on :func:`benchmarks.pbt.digits_splits`
with fixed learning rates and with hand-made decaying schedules of the same epoch budget, and prints
the best of each by final ``val_loss`` (mean over the init seeds), with their ``test_loss``.

``python -m benchmarks.pbt_digits_schedules`` (F2's check, about a minute on one core): the
``digits`` set-up (hidden 64, batch 64), one init seed, 24 epochs; 11 log-spaced lr in [1e-3, 0.3]
x momentum {0, 0.5, 0.8, 0.9, 0.95} against 27 schedules (cosine, x0.8 every 3 epochs, /10 at
epoch 12; lr0 0.03, 0.1, 0.3; momentum 0, 0.5, 0.9).

``python -m benchmarks.pbt_digits_schedules --problem digits-noisy --epochs 12 --seeds 0,1,2`` (F3's
check, a few minutes): the ``digits-noisy`` set-up (30% noisy training labels, hidden 16, batch 8,
plain SGD); 11 log-spaced lr in [3e-3, 1] against 4 shapes (cosine to 0, x0.8 every 2 epochs, x0.5
every 3 epochs, /10 at half time) x the 8 largest of those lr as lr0. It also prints the best
schedule's and the best fixed lr's values per seed.
"""

from __future__ import annotations

import argparse
import math
import statistics

import numpy as np


def curve(lr_of, momentum: float, epochs: int = 24, seed: int = 0, problem: str = "digits") -> list[tuple[float, float]]:
    """``(val_loss, test_loss)`` after each of ``epochs`` epochs of SGD with learning rate
    ``lr_of(epoch)``, on ``problem``'s set-up (model width, batch size, label noise)."""
    import torch
    from torch import nn

    from benchmarks.pbt import digits_problem, digits_splits, noisy_labels
    from tuneorch_examples.digits_mlp import build_model

    p = digits_problem(problem)
    torch.set_num_threads(1)
    (xt, yt), val, test = digits_splits()
    yt = noisy_labels(yt, p.label_noise)
    (xt, yt), (xv, yv), (xs, ys) = [tuple(map(torch.from_numpy, part)) for part in ((xt, yt), val, test)]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build_model(p.hidden, 2, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=lr_of(0), momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    out = []
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr_of(epoch)
        model.train()
        order = torch.randperm(len(xt), generator=g)
        for i in range(0, len(order), p.batch_size):
            idx = order[i:i + p.batch_size]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out.append((float(loss_fn(model(xv), yv)), float(loss_fn(model(xs), ys))))
    return out


def final_losses(lr_of, momentum: float, epochs: int = 24, seed: int = 0, problem: str = "digits") -> tuple[float, float]:
    """``(val_loss, test_loss)`` after ``epochs`` epochs of SGD with learning rate ``lr_of(epoch)``."""
    return curve(lr_of, momentum, epochs, seed, problem)[-1]


def _evaluate(lr_of, momentum, epochs, seeds, problem):
    per_seed = [final_losses(lr_of, momentum, epochs, s, problem) for s in seeds]
    return (statistics.mean(v for v, _ in per_seed), statistics.mean(t for _, t in per_seed), per_seed)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", default="digits", choices=("digits", "digits-noisy"))
    ap.add_argument("--epochs", type=int, default=None, help="default: 24 (digits), 12 (digits-noisy)")
    ap.add_argument("--seeds", default="0", help="comma-separated init seeds")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    E = args.epochs or (24 if args.problem == "digits" else 12)
    if args.problem == "digits":
        fixed_grid = [(lr, mom) for lr in np.geomspace(1e-3, 0.3, 11) for mom in (0.0, 0.5, 0.8, 0.9, 0.95)]
        shapes = {"cosine": lambda lr0, e: lr0 * 0.5 * (1 + math.cos(math.pi * e / E)),
                  "x0.8 every 3 epochs": lambda lr0, e: lr0 * 0.8 ** (e // 3),
                  f"/10 at epoch {E // 2}": lambda lr0, e: lr0 * (0.1 if e >= E // 2 else 1.0)}
        sched_grid = [(name, lr0, mom) for name in shapes for lr0 in (0.03, 0.1, 0.3) for mom in (0.0, 0.5, 0.9)]
    else:
        lrs = np.geomspace(3e-3, 1.0, 11)
        fixed_grid = [(lr, 0.0) for lr in lrs]
        shapes = {"cosine": lambda lr0, e: lr0 * 0.5 * (1 + math.cos(math.pi * e / E)),
                  "x0.8 every 2 epochs": lambda lr0, e: lr0 * 0.8 ** (e // 2),
                  "x0.5 every 3 epochs": lambda lr0, e: lr0 * 0.5 ** (e // 3),
                  f"/10 at epoch {E // 2}": lambda lr0, e: lr0 * (0.1 if e >= E // 2 else 1.0)}
        sched_grid = [(name, lr0, 0.0) for name in shapes for lr0 in lrs[3:]]
    fixed = [(*_evaluate(lambda e, lr=lr: lr, mom, E, seeds, args.problem), f"fixed lr {lr:.4g} momentum {mom}")
             for lr, mom in fixed_grid]
    schedules = [(*_evaluate(lambda e, f=shapes[name], lr0=lr0: f(lr0, e), mom, E, seeds, args.problem),
                  f"{name} lr0 {lr0:.4g} momentum {mom}") for name, lr0, mom in sched_grid]
    print(f"{args.problem}, {E} epochs, init seeds {seeds}: mean over seeds")
    for title, rows in (("best fixed (by val_loss)", fixed), ("best schedules (by val_loss)", schedules)):
        print(title)
        for val, test, _, name in sorted(rows, key=lambda r: r[0])[:5]:
            print(f"  val_loss {val:.4f}  test_loss {test:.4f}  {name}")
    bf, bs = min(fixed, key=lambda r: r[0]), min(schedules, key=lambda r: r[0])
    print(f"best schedule / best fixed: val_loss {bs[0] / bf[0]:.3f}, test_loss {bs[1] / bf[1]:.3f}")
    if len(seeds) > 1:
        for s, (fv, ft), (sv, st) in zip(seeds, bf[2], bs[2]):
            print(f"  seed {s}: fixed val {fv:.4f} test {ft:.4f} | schedule val {sv:.4f} test {st:.4f}")
    for title, rows in (("fixed", fixed), ("schedules", schedules)):
        bt = min(rows, key=lambda r: r[1])
        print(f"lowest test_loss among {title}: {bt[1]:.4f} ({bt[3]})")


if __name__ == "__main__":
    main()
