"""The one codec of every process boundary (runtime/wire.py): each message round-trips, a
malformed frame is a ValueError, and nothing crosses as a bare dict, list or string."""

from __future__ import annotations

import ast
import dataclasses
import enum
import pathlib
import types
import typing
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST, Latest
from reco_sidecar.runtime import wire

RUNTIME = pathlib.Path(wire.__file__).parent
DECODERS: list[tuple[tuple[type[Any], ...], Callable[[bytes], Any]]] = [
    (typing.get_args(wire.ToWorker), wire.decode_to_worker),
    (typing.get_args(wire.ToSupervisor), wire.decode_to_supervisor),
    ((wire.Verify,), wire.decode_to_verifier),
    (typing.get_args(wire.FromVerifier), wire.decode_from_verifier),
    (typing.get_args(wire.ToFollower), wire.decode_to_follower),
    (typing.get_args(wire.FromFollower), wire.decode_from_follower),
    (typing.get_args(wire.ToLearner), wire.decode_to_learner),
    ((wire.FromLearner,), wire.decode_from_learner),
    ((wire.LearnerToSupervisor,), wire.decode_learner_to_supervisor),
]


def sample(hint: Any, variant: int) -> Any:
    """A value of type `hint`; `variant` picks among the shapes a field can take."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if Latest in args:
            return LATEST if variant % 2 else 42
        return None if variant % 2 and type(None) in args else sample(next(a for a in args if a is not type(None)),
                                                                       variant)
    if origin is tuple:
        return tuple(sample(typing.get_args(hint)[0], variant + i) for i in range(variant % 3))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        return members[variant % len(members)]
    if dataclasses.is_dataclass(hint):
        return build(typing.cast(type[Any], hint), variant)
    return {int: 7 + variant, str: f"text {variant} ü", float: 0.25 * (variant + 1), bool: bool(variant % 2)}[hint]


def build(cls: type[Any], variant: int) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(*(sample(hints[f.name], variant) for f in dataclasses.fields(cls)))


def decoders_of(cls: type[Any]) -> list[Callable[[bytes], Any]]:
    return [decode for kinds, decode in DECODERS if cls in kinds]


@pytest.mark.parametrize("cls", wire.ALL, ids=lambda c: c.TAG)
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_every_message_round_trips(cls: type[Any], variant: int) -> None:
    message = build(cls, variant)
    for decode in decoders_of(cls):
        assert decode(wire.encode(message)) == message


def test_every_message_has_one_direction() -> None:
    # Relayed unchanged: the follower's status goes on from the supervisor to every worker.
    relayed = {wire.StoreStatus: 2}
    for cls in wire.ALL:
        assert sum(cls in kinds for kinds, _ in DECODERS) == relayed.get(cls, 1), cls


def frame(*items: Any) -> bytes:
    data: bytes = msgpack.packb(list(items))
    return data


@pytest.mark.parametrize(("data", "decode", "error"), [
    (b"\xc1\xc1", wire.decode_to_worker, "not msgpack"),
    (msgpack.packb({"type": "prepare"}), wire.decode_to_worker, r"not \[tag, ...\]"),
    (frame(), wire.decode_to_worker, r"not \[tag, ...\]"),
    (frame("nonsense", 1), wire.decode_to_worker, "unexpected control message 'nonsense'"),
    (frame("heartbeat", 0, 1, 0), wire.decode_to_worker, "unexpected control message 'heartbeat'"),
    (frame("prepare", 1, 2, "m", []), wire.decode_to_worker, "expected 5 fields"),
    (frame("prepare", 1, "2", "m", [], ""), wire.decode_to_worker, "prepare.version: expected int"),
    (frame("heartbeat", 0, True, 0), wire.decode_to_supervisor, "heartbeat.calls: expected int"),
    (frame("reload_refused", 1, "teapot", "m", None), wire.decode_to_worker, "unknown ErrorKind 'teapot'"),
    (frame("prepare", 1, 2, "m", [[1, 2]], ""), wire.decode_to_worker, "expected 6 fields"),
    (frame("prepare", 1, 2, "m", [], None), wire.decode_to_worker, "prepare.traceparent: expected str"),
    (frame("reload", 1, "007", "", ""), wire.decode_to_supervisor, "positive version number"),
    (frame("reload", 1, 0, "", ""), wire.decode_to_supervisor, "positive version number"),
    (frame("reload", 1, -3, "", ""), wire.decode_to_supervisor, "positive version number"),
    (frame("reload", 1, True, "", ""), wire.decode_to_supervisor, "positive version number"),
    (frame("reload", 1, 10 ** 18, "", ""), wire.decode_to_supervisor, "positive version number"),
    (frame("sync", 1, "7"), wire.decode_to_follower, "positive version number"),
    (frame("verify", 1, "latest", ["3"]), wire.decode_to_verifier, "verify.known_bad: expected int"),
    (frame("store_status", "s3://b/m", 0, 0, 0, 0, "1,2", 0, "", 0.0), wire.decode_from_follower,
     "cached_versions: expected a list"),
])
def test_a_malformed_frame_is_a_value_error(data: bytes, decode: Callable[[bytes], Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode(data)


def test_a_version_spec_is_typed_on_the_wire() -> None:
    request = wire.decode_to_supervisor(wire.encode(wire.ReloadRequest(1, LATEST, "m")))
    assert isinstance(request, wire.ReloadRequest) and request.version is LATEST
    assert wire.decode_to_follower(wire.encode(wire.Sync(3, 12))) == wire.Sync(3, 12)
    refused = wire.decode_from_verifier(wire.encode(wire.VersionRefused(1, ErrorKind.NOT_FOUND, "no 9", "version", ())))
    assert isinstance(refused, wire.VersionRefused) and refused.kind is ErrorKind.NOT_FOUND


def test_a_frame_larger_than_a_socket_takes_is_refused_by_the_sender() -> None:
    with pytest.raises(wire.FrameTooLarge, match="larger than"):
        wire.encode(wire.BootFailed(0, "x" * wire.MAX_FRAME))


# -- nothing crosses as a bare dict, list or string ---------------------------------------------------

PLAIN = {int, str, float, bool, type(None)}


def allowed(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return all(allowed(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        return len(args) == 2 and args[1] is Ellipsis and allowed(args[0])
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return True
    if dataclasses.is_dataclass(hint):
        return fields_allowed(typing.cast(type[Any], hint))
    return hint in PLAIN


def fields_allowed(cls: type[Any]) -> bool:
    hints = typing.get_type_hints(cls)
    return all(allowed(hints[f.name]) for f in dataclasses.fields(cls))


@pytest.mark.parametrize("cls", wire.ALL, ids=lambda c: c.TAG)
def test_every_message_is_a_frozen_dataclass_of_typed_fields(cls: type[Any]) -> None:
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert fields_allowed(cls), f"{cls.__name__} has a field that is a dict, a list or Any"


# The codecs and raw socket calls a runtime module may use, and why.
CODEC_MODULES = {"json", "msgpack", "pickle", "marshal"}
ALLOWED_CODEC = {
    "wire.py": "the one codec",
    # The ready line is the documented interface to the host that started `serve` (docs/api.md),
    # read by any language, not a message between our processes.
    "supervisor/ready_line.py": "the host's ready line",
    # The online journal's records are a file format on disk (replayed at start), not a
    # message between processes.
    "learner/journal.py": "the journal's records on disk",
    # Entries of the Redis Stream every replica reads: a shared log's record format, like the
    # journal's, not a message between this sidecar's processes.
    "learner/stream.py": "the replicas' stream entries",
}
RAW_CALLS = {"sendall", "sendmsg", "recvmsg", "recv_into", "recvfrom"}


def runtime_modules() -> list[pathlib.Path]:
    return sorted(RUNTIME.rglob("*.py"))


def test_only_the_wire_encodes_and_only_the_channel_touches_sockets() -> None:
    found = []
    for path in runtime_modules():
        rel = str(path.relative_to(RUNTIME))
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in CODEC_MODULES for n in names) and rel not in ALLOWED_CODEC:
                found.append(f"{rel}:{getattr(node, 'lineno', 0)}: imports a codec")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and rel != "channel.py"
                    and (node.func.attr in RAW_CALLS
                         or (node.func.attr in ("send", "recv") and _on_socket(node.func.value)))):
                found.append(f"{rel}:{node.lineno}: raw socket call {node.func.attr}")
    assert found == []


def _on_socket(value: ast.expr) -> bool:
    """`sock.send(...)`, `self._sock.recv(...)`: a socket used directly rather than a Channel."""
    name = value.attr if isinstance(value, ast.Attribute) else value.id if isinstance(value, ast.Name) else ""
    return "sock" in name


def test_every_channel_send_at_the_call_sites_sends_a_wire_message() -> None:
    """`channel.send(x)` anywhere in runtime/ names a wire class or a value typed as one
    (mypy checks the types; this checks no call builds a dict, list or string inline)."""
    found = []
    for path in runtime_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "send"
                    and node.args and isinstance(node.args[0], ast.Dict | ast.List | ast.Tuple | ast.Constant
                                                 | ast.JoinedStr)):
                found.append(f"{path.relative_to(RUNTIME)}:{node.lineno}")
    assert found == []


def test_a_feeds_events_are_checked_like_every_other_field() -> None:
    """A Feed's events take a faster path than other dataclasses: the same checks, the same
    field named when one is wrong, an integer time or weight still read as a float."""
    good = ["id", "u", "i", "click", None, 1.5]
    decoded = wire.decode_to_learner(msgpack.packb(["feed", 3, [good, ["id2", "u", "i", "click", 2, 7]]]))
    assert isinstance(decoded, wire.Feed)
    assert decoded.events[1].weight == 2.0 and type(decoded.events[1].weight) is float
    assert type(decoded.events[1].time) is float
    for wrong, field in (([1, "u", "i", "click", None, 1.5], "expected str"),
                         (["id", "u", "i", "click", "heavy", 1.5], "expected float"),
                         (["id", "u", "i", "click", None, None], "expected float"),
                         (["id", "u", "i", "click", None], "expected 6 fields"),
                         ({"id": 1}, "expected 6 fields")):
        with pytest.raises(ValueError, match=field):
            wire.decode_to_learner(msgpack.packb(["feed", 3, [good, wrong]]))
