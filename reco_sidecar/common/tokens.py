"""Bearer-token files: read by settings (to fail at start), by the service's authenticator
and by the training CLI's Reload client, so it sits below all three."""

from __future__ import annotations

import pathlib


def read_tokens(path: pathlib.Path) -> list[str]:
    """One token a line; blank lines and lines starting with # are ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read tokens: {e}") from None
    tokens = [line.strip() for line in text.splitlines()]
    tokens = [t for t in tokens if t and not t.startswith("#")]
    if not tokens:
        raise ValueError(f"{path}: holds no tokens")
    for t in tokens:
        if any(c.isspace() for c in t):
            raise ValueError(f"{path}: a token contains whitespace")
    return tokens
