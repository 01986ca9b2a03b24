"""sha256 verification with a per-process cache keyed by file identity.

Alternating reloads between two versions must not re-hash hundreds of megabytes each
time; a file whose inode, size and mtime are unchanged has the content we hashed.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading

_lock = threading.Lock()
_verified: dict[tuple[str, int, int, int, int], str] = {}


def sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _key(path: pathlib.Path, st: os.stat_result) -> tuple[str, int, int, int, int]:
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def digest(path: pathlib.Path) -> str:
    st = path.stat()
    key = _key(path, st)
    with _lock:
        cached = _verified.get(key)
    if cached is not None:
        return cached
    value = sha256_file(path)
    with _lock:
        _verified[key] = value
    return value
