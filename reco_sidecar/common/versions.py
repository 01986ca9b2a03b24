"""The one set of rules for naming a model version: "latest" (or empty) for the newest
complete version, otherwise a positive decimal number written in ASCII digits without
leading zeros (so a version directory has exactly one spelling, and `int()` never meets a
character such as '²' that `str.isdigit` accepts and `int` refuses)."""

from __future__ import annotations

import enum
from typing import Final

from reco_sidecar.common.errors import InvalidArgument

# Fits an int64 (the proto's version fields) with room to spare; longer strings are refused
# before int() sees them.
MAX_DIGITS: Final = 18


class Latest(enum.Enum):
    LATEST = "latest"

    def __str__(self) -> str:
        return self.value


LATEST: Final = Latest.LATEST
VersionSpec = Latest | int


def version_number(text: str) -> int | None:
    """The version a directory name or spec denotes, or None if it denotes none."""
    if not text or len(text) > MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    if text[0] == "0":
        return None
    return int(text)


def parse_version_spec(text: str, *, field: str = "version") -> VersionSpec:
    """'latest', '' (meaning latest) or a version number; InvalidArgument naming `field` otherwise."""
    stripped = text.strip()
    if stripped in ("", "latest"):
        return LATEST
    number = version_number(stripped)
    if number is None:
        raise InvalidArgument(
            f"must be 'latest' or a positive version number (ASCII digits, no leading zero, at most "
            f"{MAX_DIGITS}), got {text[:40]!r}", field=field)
    return number


def spec_text(spec: VersionSpec) -> str:
    return str(spec)
