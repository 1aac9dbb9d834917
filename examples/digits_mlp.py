"""A real torch trainable: an MLP on scikit-learn's bundled digits data, trained epoch by epoch.

It reports ``val_loss`` and ``val_accuracy`` after every epoch and saves a checkpoint each
time, and it resumes from ``tune.get_checkpoint()``, so early-stopping schedulers (ASHA) can
pause/stop it and PBT can clone its weights. It trains on the GPU that Ray assigned to the
trial when there is one (``CUDA_VISIBLE_DEVICES`` is set by Ray per trial).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch
from torch import nn

from ray import tune


def load_digits_split(seed: int = 0, val_fraction: float = 0.25):
    """Standardised digits features and labels, split once with a fixed seed (8x8 images, 10 classes)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = x[order].astype(np.float32) / 16.0, y[order].astype(np.int64)
    n_val = int(len(x) * val_fraction)
    mean, std = x[n_val:].mean(0), x[n_val:].std(0) + 1e-6
    x = (x - mean) / std
    return (x[n_val:], y[n_val:]), (x[:n_val], y[:n_val])


def build_model(hidden: int, layers: int, dropout: float) -> nn.Module:
    blocks, width = [], 64
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    blocks.append(nn.Linear(width, 10))
    return nn.Sequential(*blocks)


def load_model(checkpoint_dir: str, config: dict) -> nn.Module:
    """The model of one of ``train_digits``'s checkpoints, on the CPU, ready for inference.

    tuneorch's ``register_model`` protocol (orchestrator/tracking/model_registry.py): it calls this
    with the best trial's latest checkpoint directory and that trial's config.
    """
    state = torch.load(os.path.join(checkpoint_dir, "state.pt"), map_location="cpu", weights_only=True)
    model = build_model(int(config["hidden"]), int(config.get("layers", 2)), float(config.get("dropout", 0.0)))
    model.load_state_dict(state["model"])
    return model.eval()


def trial_device() -> torch.device:
    """The GPU Ray gave this trial (it sees only its own), else the CPU."""
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def train_digits(config: dict) -> None:
    torch.set_num_threads(1)  # one trial per CPU: avoid oversubscribing the node
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    device = trial_device()
    (x_train, y_train), (x_val, y_val) = load_digits_split()
    x_train, y_train = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
    x_val, y_val = torch.from_numpy(x_val).to(device), torch.from_numpy(y_val).to(device)

    model = build_model(int(config["hidden"]), int(config.get("layers", 2)), float(config.get("dropout", 0.0))).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(config["lr"]), momentum=float(config.get("momentum", 0.9)))
    loss_fn = nn.CrossEntropyLoss()
    epochs = int(config.get("epochs", 10))
    batch_size = int(config.get("batch_size", 64))
    generator = torch.Generator().manual_seed(seed)

    start_epoch = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, "state.pt"), map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # PBT may have changed lr/momentum: the config wins
            group["lr"] = float(config["lr"])
            group["momentum"] = float(config.get("momentum", 0.9))
        generator.set_state(state["generator"])
        start_epoch = state["epoch"]

    for epoch in range(start_epoch, epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(device)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = float(loss_fn(logits, y_val))
            val_accuracy = float((logits.argmax(1) == y_val).float().mean())
        with tempfile.TemporaryDirectory() as directory:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(), "epoch": epoch + 1},
                       os.path.join(directory, "state.pt"))
            tune.report({"val_loss": val_loss, "val_accuracy": val_accuracy, "epoch": epoch + 1},
                        checkpoint=tune.Checkpoint.from_directory(directory))
