"""Progress bars for the long training steps, on stderr so stdout stays machine-readable."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar(enabled: bool | None, *, desc: str, total: int | None = None, unit: str = "it") -> Any:
    """A tqdm bar; enabled=None shows it only when stderr is a terminal (tqdm's own test)."""
    disable = None if enabled is None else not enabled
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, dynamic_ncols=True,
                leave=False)


def iterate(items: Iterable[T], enabled: bool | None, *, desc: str, total: int | None = None,
            unit: str = "it") -> Iterator[T]:
    with bar(enabled, desc=desc, total=total, unit=unit) as b:
        for item in items:
            yield item
            b.update(1)


def shown(enabled: bool | None) -> bool:
    """What implicit's show_progress flag should be for this setting."""
    return sys.stderr.isatty() if enabled is None else enabled
