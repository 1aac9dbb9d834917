"""Keep secrets out of the records: params whose names look like credentials are masked.

A search space or a trainable's config sometimes carries an API key or a token (a dataset
bucket, a W&B key). The trainable needs the real value; the MLflow params, tags and the Parquet
exports do not, and those are read by everyone with access to the tracking server. A name is
secret-looking when one of its parts (split at ``/ . _ -`` and camelCase) is one of
:data:`SECRET_WORDS`, e.g. ``api_key``, ``db.password``, ``hfToken``, ``aws/secret_access_key``.
"""

from __future__ import annotations

import os
import re
from typing import Any

SECRET_WORDS = frozenset({"token", "password", "passwd", "secret", "key", "apikey", "credential",
                          "credentials", "auth"})
REDACTED = "***"

_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_name(name: str) -> bool:
    """Whether a (possibly nested, ``a/b.c``) parameter name looks like a credential."""
    return any(part.lower() in SECRET_WORDS for part in _PARTS.findall(str(name)))


def redact_flat(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of flat ``{name: value}`` with secret-looking values replaced by ``***``."""
    return {k: (REDACTED if is_secret_name(k) and v not in (None, "") else v) for k, v in params.items()}


def redact_config(config: Any) -> Any:
    """A copy of a nested config with the values under secret-looking keys replaced."""
    if isinstance(config, dict):
        return {k: (REDACTED if is_secret_name(k) and not isinstance(v, dict) and v not in (None, "")
                    else redact_config(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [redact_config(v) for v in config]
    return config


def redact_space_rows(rows: Any) -> Any:
    """``Space.describe()`` rows with the choices of secret-looking parameters masked.

    A tuned choice under ``api_key`` lists its candidate values in ``choices``; the count stays
    visible, the values do not. Bounds of numeric parameters are not values and stay.
    """
    if not isinstance(rows, list):
        return redact_config(rows)
    out = []
    for row in rows:
        if isinstance(row, dict) and "choices" in row and is_secret_name(row.get("name", "")):
            row = {**row, "choices": [REDACTED] * len(row["choices"])}
        out.append(redact_config(row))
    return out


def trial_name(trial: Any) -> str:
    """Tune's ``trial_name_creator``: ``<trainable>_<trial_id>``, never a config value."""
    return f"{trial.trainable_name}_{trial.trial_id}".replace("/", "_").replace(os.sep, "_")


def trial_dirname(trial: Any) -> str:
    """Tune's ``trial_dirname_creator``: the trial folder is named like the trial.

    Tune's default (``<trainable>_<trial_id>_<n>_<key>=<value>,..._<date>``) writes config values
    into folder names, which end up in listings, logs, bucket keys and error messages.
    """
    return trial_name(trial)
