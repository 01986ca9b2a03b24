"""Reading a small operator-edited file (experiments, ranking rules) from the supervisor's
loop, which must never wait on it: a FIFO or a device in the file's place, or a file far
larger than any such file should be, is refused before a byte is read."""

from __future__ import annotations

import os
import pathlib
import stat

# O_NONBLOCK: a FIFO (or a device) in the file's place must not block the open.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class Unreadable(Exception):
    """Why the file was not read; the caller raises its own error naming the field."""


def read_text(path: pathlib.Path, max_bytes: int) -> str:
    """The file's UTF-8 text, bounded in size before any byte is read; anything but a regular
    file is refused without blocking."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise Unreadable(f"{path}: cannot read: {e}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise Unreadable(f"{path}: larger than {max_bytes} bytes")
        chunks, left = [], max_bytes + 1  # a file that grew since fstat is still bounded
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise Unreadable(f"{path}: larger than {max_bytes} bytes")
        return b"".join(chunks).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Unreadable(f"{path}: cannot read: {e}") from None
    finally:
        os.close(fd)
