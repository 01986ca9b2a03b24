"""sha256 of open files, with a per-process cache keyed by the open file's identity.

Alternating reloads between two versions must not re-hash hundreds of megabytes each time.
The key comes from fstat of the descriptor the caller will read or map, never from a path:
a file renamed over the original is another inode and is hashed again, and one written in
place has a new mtime and ctime. Workers forked after the supervisor verified a version
inherit its cache, so their first load of that version re-uses its hashes.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading

Key = tuple[int, int, int, int, int]

_lock = threading.Lock()
_verified: dict[Key, str] = {}
_hashed = [0]  # bytes this process has read to hash, ever (a load logs its share)


def hashed_bytes() -> int:
    with _lock:
        return _hashed[0]


def _count(n: int) -> None:
    with _lock:
        _hashed[0] += n


def sha256_file(path: pathlib.Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def key(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def cached(k: Key) -> str | None:
    with _lock:
        return _verified.get(k)


def remember(k: Key, digest: str) -> None:
    with _lock:
        _verified[k] = digest


def known(directory: pathlib.Path) -> list[tuple[Key, str]]:
    """The digests this process holds for the files now in `directory`, keyed by identity
    (a file replaced or rewritten since it was hashed has another key and is left out)."""
    out: list[tuple[Key, str]] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return out
    for path in entries:
        try:
            k = key(os.stat(path, follow_symlinks=False))
        except OSError:
            continue
        value = cached(k)
        if value is not None:
            out.append((k, value))
    return out


def digest_fd(fd: int) -> str:
    """sha256 of everything the open file `fd` holds (read from offset 0, without moving the
    descriptor's offset), from the cache when this very file was hashed before."""
    k = key(os.fstat(fd))
    value = cached(k)
    if value is not None:
        return value
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        h.update(chunk)  # releases the GIL for large chunks: requests keep running beside a reload
        offset += len(chunk)
    _count(offset)
    value = h.hexdigest()
    remember(k, value)
    return value


def digest_bytes(k: Key, data: bytes) -> str:
    """sha256 of `data`, read from the file whose identity is `k` (cached like digest_fd)."""
    value = cached(k)
    if value is None:
        value = hashlib.sha256(data).hexdigest()
        _count(len(data))
        remember(k, value)
    return value


def digest(path: pathlib.Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return digest_fd(fd)
    finally:
        os.close(fd)
