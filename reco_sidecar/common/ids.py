"""What an external id (a user, an item, an event) may be: the one rule requests, feedback
events and their journal share."""

from __future__ import annotations

MAX_ID_BYTES = 512


def id_problem(value: str) -> str | None:
    """What is wrong with an id, or None. The message never repeats the id."""
    if not value:
        return "must not be empty"
    # a UTF-8 character takes at most 4 bytes: short ids need no encoding to be measured
    if len(value) * 4 > MAX_ID_BYTES and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return f"longer than {MAX_ID_BYTES} bytes"
    return None
