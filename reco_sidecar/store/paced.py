"""Reading an S3 object's body under a deadline and a progress check.

botocore's read timeout bounds one silent wait, not a transfer: a store (or a proxy) that
sends one byte every few seconds never trips it, and a blocking read of a megabyte waits for
the whole megabyte. Here every read returns whatever bytes have arrived (urllib3's read1), so
between two reads the pace is checked: each PROGRESS_WINDOW must bring at least
MIN_WINDOW_BYTES (or the rest of the object), and the whole transfer must end by its deadline.
A transfer that fails either is StoreUnreachable: the next look may find a faster path."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from reco_sidecar.store.errors import StoreUnreachable

PROGRESS_WINDOW = 10.0  # seconds
MIN_WINDOW_BYTES = 64 * 1024


def chunks(body: Any, size: int, uri: str, deadline: float, *, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The body's bytes as they arrive, at most `size` + 1 of them (one past the expected size,
    so a larger object is seen); `deadline` is a time.monotonic() value."""
    raw = getattr(body, "_raw_stream", None)  # botocore's StreamingBody wraps a urllib3 response
    read = raw.read1 if raw is not None and hasattr(raw, "read1") else body.read
    with contextlib.suppress(AttributeError, OSError):
        body.set_socket_timeout(PROGRESS_WINDOW)  # total silence fails within one window too
    got = 0
    window_start, window_got = time.monotonic(), 0
    while got <= size:
        try:
            data = bytes(read(min(chunk, size + 1 - got)))
        except OSError as e:  # a reset or a socket timeout mid-body surfaces from the socket
            raise StoreUnreachable(f"downloading {uri}: {e}") from None
        except Exception as e:  # urllib3's ReadTimeoutError / ProtocolError are not OSErrors
            raise StoreUnreachable(f"downloading {uri}: {type(e).__name__}: {e}") from None
        if not data:
            return
        got += len(data)
        window_got += len(data)
        yield data
        now = time.monotonic()
        if now > deadline:
            raise StoreUnreachable(f"downloading {uri}: too slow: not done by its deadline ({got} of {size} bytes)")
        if now - window_start >= PROGRESS_WINDOW:
            needed = min(MIN_WINDOW_BYTES, size - (got - window_got))
            if window_got < needed:
                raise StoreUnreachable(f"downloading {uri}: too slow: only {window_got} bytes in "
                                       f"{now - window_start:.0f} s (at least {MIN_WINDOW_BYTES} are needed every "
                                       f"{PROGRESS_WINDOW:.0f} s)")
            window_start, window_got = now, 0
