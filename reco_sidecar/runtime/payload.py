"""Content too large for one control frame (an experiments file can be 1 MiB; a frame is at
most wire.MAX_FRAME) crosses as a file: the supervisor writes it once into a directory of
its own and sends its path, size and sha256 (wire.Payload); each worker reads it and checks
both before using a byte. Files are named by their digest, so a path always means the
same bytes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import shutil
import tempfile

from reco_sidecar.runtime import wire


class PayloadDir:
    """The supervisor's side: a private directory, removed at exit."""

    def __init__(self) -> None:
        self.path = pathlib.Path(tempfile.mkdtemp(prefix="reco-sidecar-payloads-"))

    def write(self, data: bytes) -> wire.Payload:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path / digest
        if not target.exists():
            scratch = self.path / f".{digest}.{os.getpid()}.tmp"
            scratch.write_bytes(data)
            scratch.replace(target)  # whole or absent, for a worker reading it meanwhile
        return wire.Payload(str(target), digest, len(data))

    def keep_only(self, payloads: list[wire.Payload | None]) -> None:
        """Removes every file but these (the one the pool serves, the one being rolled out)."""
        keep = {p.path for p in payloads if p is not None}
        for path in self.path.iterdir():
            if str(path) not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def read(payload: wire.Payload) -> bytes:
    """The payload's bytes; ValueError when the file is not what the message says."""
    try:
        data = pathlib.Path(payload.path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {payload.path}: {e}") from None
    if len(data) != payload.size or hashlib.sha256(data).hexdigest() != payload.sha256:
        raise ValueError(f"{payload.path} is not the {payload.size} bytes with sha256 {payload.sha256} it was sent as")
    return data
