"""README.md names every RPC the service has, as the first thing a reader sees of the API."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_readme_names_every_rpc() -> None:
    proto = (ROOT / "protos" / "reco" / "v1" / "reco.proto").read_text()
    rpcs = re.findall(r"^\s*rpc (\w+)\(", proto, flags=re.M)
    assert len(rpcs) >= 10
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in rpcs if f"**{name}**" not in readme]
    assert missing == []
