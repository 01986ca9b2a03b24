"""The C kernels of setup.py are optional: an install without a C compiler goes on without
them, and each caller keeps a numpy form of the same arithmetic. This is how a caller asks
for one."""

from __future__ import annotations

import importlib
from typing import Any


def kernel(module: str, name: str) -> Any | None:
    """The function `name` of the compiled extension `module`, or None when it was not built."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None
