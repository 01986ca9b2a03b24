"""The one rule for a model's name, wherever a name comes from: `--model`, a directory found
under the model root, a store's model, a manifest. The name travels in status replies,
metric labels, log lines and object keys, so it is plain ASCII, never hidden (`.x`), never
an option (`-x`), and short. Matched whole: a pattern ending in `$` would let a name ending
in a newline through."""

from __future__ import annotations

import re

MAX_LENGTH = 128
_MODEL = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_LENGTH - 1}}}")
RULE = f"1-{MAX_LENGTH} letters, digits, '_', '.' or '-', starting with a letter or digit"


def is_model_name(name: str) -> bool:
    return _MODEL.fullmatch(name) is not None


def printable(name: str, limit: int = 80) -> str:
    """`name` for a log line or message: ASCII only (a directory name may be undecodable
    bytes, held as surrogates) and bounded."""
    shown = ascii(name)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
