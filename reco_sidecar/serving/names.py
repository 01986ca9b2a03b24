"""The service's name and method paths, from the compiled proto descriptor: one source,
so a renamed or added method cannot leave a stale copy behind (auth's admin list, the
handler table, health and reflection)."""

from __future__ import annotations

from reco_sidecar.gen.reco.v1 import reco_pb2

_DESCRIPTOR = reco_pb2.DESCRIPTOR.services_by_name["Recommender"]
SERVICE: str = _DESCRIPTOR.full_name
METHODS: tuple[str, ...] = tuple(m.name for m in _DESCRIPTOR.methods)


def method_path(name: str) -> str:
    """`/reco.v1.Recommender/<name>`; raises KeyError for a method the proto does not have."""
    if name not in METHODS:
        raise KeyError(f"{SERVICE} has no method {name!r}")
    return f"/{SERVICE}/{name}"
