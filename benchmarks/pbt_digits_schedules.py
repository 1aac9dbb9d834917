"""Is there a learning-rate schedule for PBT to find on the digits MLP? (``BENCHMARKS.md`` F2)

``python -m benchmarks.pbt_digits_schedules`` trains :func:`benchmarks.pbt.digits_trainable`'s
model on :func:`benchmarks.pbt.digits_splits` (no Ray, one init seed, 24 epochs) with a grid of
fixed (lr, momentum), 11 log-spaced lr in [1e-3, 0.3] x momentum {0, 0.5, 0.8, 0.9, 0.95}, and
with 27 hand-made decaying schedules (cosine, x0.8 every 3 epochs, /10 at epoch 12; lr0 0.03,
0.1, 0.3; momentum 0, 0.5, 0.9), and prints the 5 best of each by final ``val_loss`` with their
``test_loss``. About a minute on one core.
"""

from __future__ import annotations

import math

import numpy as np


def final_losses(lr_of, momentum: float, epochs: int = 24, seed: int = 0) -> tuple[float, float]:
    """``(val_loss, test_loss)`` after ``epochs`` epochs of SGD with learning rate ``lr_of(epoch)``."""
    import torch
    from torch import nn

    from benchmarks.pbt import digits_splits
    from examples.digits_mlp import build_model

    torch.set_num_threads(1)
    (xt, yt), (xv, yv), (xs, ys) = [tuple(map(torch.from_numpy, p)) for p in digits_splits()]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build_model(64, 2, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=lr_of(0), momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr_of(epoch)
        model.train()
        order = torch.randperm(len(xt), generator=g)
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float(loss_fn(model(xv), yv)), float(loss_fn(model(xs), ys))


def main() -> None:
    fixed = [(*final_losses(lambda e, lr=lr: lr, mom), f"fixed lr {lr:.4f} momentum {mom}")
             for lr in np.geomspace(1e-3, 0.3, 11) for mom in (0.0, 0.5, 0.8, 0.9, 0.95)]
    shapes = {"cosine": lambda lr0, e: lr0 * 0.5 * (1 + math.cos(math.pi * e / 24)),
              "x0.8 every 3 epochs": lambda lr0, e: lr0 * 0.8 ** (e // 3),
              "/10 at epoch 12": lambda lr0, e: lr0 * (0.1 if e >= 12 else 1.0)}
    schedules = [(*final_losses(lambda e, f=f, lr0=lr0: f(lr0, e), mom), f"{name} lr0 {lr0} momentum {mom}")
                 for name, f in shapes.items() for lr0 in (0.03, 0.1, 0.3) for mom in (0.0, 0.5, 0.9)]
    for title, rows in (("best fixed (by val_loss)", fixed), ("best schedules (by val_loss)", schedules)):
        print(title)
        for val, test, name in sorted(rows)[:5]:
            print(f"  val_loss {val:.4f}  test_loss {test:.4f}  {name}")


if __name__ == "__main__":
    main()
