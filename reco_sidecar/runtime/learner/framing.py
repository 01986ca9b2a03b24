"""Messages between the workers and the learner: the typed messages of messages.py, each
behind a 4-byte length, over a Unix stream socket (a Feed of a thousand long ids is larger
than a SOCK_SEQPACKET datagram may be)."""

from __future__ import annotations

import asyncio
import struct

from reco_sidecar.runtime import wire

_LENGTH = struct.Struct(">I")
MAX_FRAME = 8 << 20


def frame(message: wire.Message) -> bytes:
    data = wire.encode(message, limit=MAX_FRAME)
    return _LENGTH.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's bytes; IncompleteReadError at EOF, ValueError for an oversized one."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes, at most {MAX_FRAME}")
    return await reader.readexactly(length)


def address(supervisor_pid: int) -> str:
    """The learner's socket in the abstract namespace: no file to clean up after a kill -9,
    no path length limit, gone when the supervisor that bound it is gone."""
    return f"\0reco-sidecar-learner-{supervisor_pid}"
