"""What GetModelStatus shows about the model store: one frozen value, made by the follower
and carried unchanged to every worker (runtime/wire.py lists it among the messages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class StoreStatus:
    """Field names as in the proto's StoreStatus."""

    TAG: ClassVar[str] = "store_status"
    uri: str
    target_version: int = 0
    downloading_version: int = 0
    downloaded_bytes: int = 0
    download_total_bytes: int = 0
    cached_versions: tuple[int, ...] = ()
    failed_version: int = 0
    error: str = ""
    checked_at: float = 0.0
