"""Bearer tokens on a real sidecar: callers, admins, open health and reflection."""

from __future__ import annotations

import pathlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from reco_sidecar.common import tokens
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving import auth
from tests.support.server import Sidecar, command, running_sidecar, stop_tree

CALLER = "caller-" + uuid.uuid4().hex
ADMIN = "admin-" + uuid.uuid4().hex


def _bearer(token: str, scheme: str = "Bearer") -> list[tuple[str, str]]:
    return [("authorization", f"{scheme} {token}")]


@pytest.fixture(scope="module")
def token_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    d = tmp_path_factory.mktemp("tokens")
    callers, admins = d / "callers", d / "admins"
    callers.write_text(f"# callers\n\n  {CALLER}  \nanother-caller\n")
    admins.write_text(f"{ADMIN}\n")
    return callers, admins


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path, token_files: tuple[pathlib.Path, pathlib.Path]) -> Iterator[Sidecar]:
    callers, admins = token_files
    args = ["--auth-tokens-file", str(callers), "--admin-tokens-file", str(admins)]
    with running_sidecar(demo_root, "demo", workers=1, extra_args=args) as s:
        yield s


def _code(call: Callable[..., Any], request: Message, **kwargs: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        result = call(request, timeout=10, **kwargs)
        if not hasattr(result, "model"):  # a stream fails when read
            list(result)
    return e.value.code()


ALL_CALLS = [
    ("Recommend", reco_pb2.RecommendRequest(user_id="someone", n=3)),
    ("Similar", reco_pb2.SimilarRequest(item_id="something", n=3)),
    ("BatchRecommend", reco_pb2.BatchRecommendRequest(user_ids=["someone"], n=3)),
    ("Reload", reco_pb2.ReloadRequest()),
    ("GetModelStatus", reco_pb2.GetModelStatusRequest()),
]


@pytest.mark.parametrize("method,request_", ALL_CALLS, ids=[c[0] for c in ALL_CALLS])
@pytest.mark.parametrize("metadata", [None, _bearer("not-a-token"), _bearer(CALLER, "Basic"), _bearer(""),
                                      [("authorization", CALLER)], _bearer(CALLER[:-1]), _bearer(CALLER + "x")],
                         ids=["none", "unknown", "basic", "empty", "no-scheme", "prefix", "longer"])
def test_every_method_refuses_a_missing_or_unknown_token(sidecar: Sidecar, method: str, request_: Message,
                                                         metadata: list[tuple[str, str]] | None) -> None:
    call = getattr(sidecar.stub(), method)
    assert _code(call, request_, metadata=metadata) == grpc.StatusCode.UNAUTHENTICATED


def test_a_method_the_service_lacks_is_unimplemented_with_or_without_a_token(sidecar: Sidecar) -> None:
    """The token is checked before the body is read, for the Recommender's methods only."""
    with grpc.insecure_channel(sidecar.address) as channel:
        for metadata in (None, _bearer(CALLER)):
            nope = channel.unary_unary("/reco.v1.Recommender/NoSuchMethod", request_serializer=None,
                                       response_deserializer=None)
            with pytest.raises(grpc.RpcError) as e:
                nope(b"", timeout=10, metadata=None if metadata is None else tuple(metadata))
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_caller_token_calls_everything_but_reload(sidecar: Sidecar) -> None:
    stub = sidecar.stub()
    assert stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=_bearer(CALLER)).model == "demo"
    assert len(stub.Recommend(reco_pb2.RecommendRequest(user_id="x", n=3), metadata=_bearer(CALLER)).items) == 3
    assert len(list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=["a", "b"], n=2),
                                        metadata=_bearer("another-caller")))) == 2
    # The scheme is case-insensitive (RFC 7235).
    assert stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=_bearer(CALLER, "bearer")).model
    assert _code(stub.Reload, reco_pb2.ReloadRequest(), metadata=_bearer(CALLER)) \
        == grpc.StatusCode.PERMISSION_DENIED
    # Changing the experiments changes what every worker serves, like a Reload.
    assert _code(stub.ReloadExperiments, reco_pb2.ReloadExperimentsRequest(), metadata=_bearer(CALLER)) \
        == grpc.StatusCode.PERMISSION_DENIED
    # So do the ranking rules (a hidden item leaves every answer).
    assert _code(stub.ReloadRules, reco_pb2.RankingReloadRulesRequest(), metadata=_bearer(CALLER)) \
        == grpc.StatusCode.PERMISSION_DENIED


def test_an_admin_token_may_reload_and_call_the_rest(sidecar: Sidecar) -> None:
    stub = sidecar.stub()
    reply = stub.Reload(reco_pb2.ReloadRequest(), metadata=_bearer(ADMIN))
    assert reply.new_version == reply.old_version == 1
    assert stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=_bearer(ADMIN)).model == "demo"


def test_health_and_reflection_need_no_token(sidecar: Sidecar) -> None:
    with grpc.insecure_channel(sidecar.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "reco.v1.Recommender"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = list(reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = {s.name for s in answers[0].list_services_response.service}
    assert "reco.v1.Recommender" in names


def test_refusals_are_logged_without_the_token(sidecar: Sidecar) -> None:
    rid = uuid.uuid4().hex
    secret = "wrong-" + uuid.uuid4().hex
    stub = sidecar.stub()
    _code(stub.Recommend, reco_pb2.RecommendRequest(user_id="x", n=3),
          metadata=[*_bearer(secret), ("x-request-id", rid)])
    _code(stub.Reload, reco_pb2.ReloadRequest(), metadata=[*_bearer(CALLER), ("x-request-id", rid)])
    lines = [e for e in sidecar.log_events() if e.get("event") == "rpc" and e.get("request_id") == rid]
    assert sorted((e["method"], e["code"]) for e in lines) == [("Recommend", "UNAUTHENTICATED"),
                                                               ("Reload", "PERMISSION_DENIED")]
    text = sidecar.stderr()
    assert secret not in text and CALLER not in text and ADMIN not in text


def test_without_an_admin_file_nobody_reloads_over_grpc(demo_root: pathlib.Path, token_files: tuple[pathlib.Path,
                                                        pathlib.Path]) -> None:
    callers, _ = token_files
    with running_sidecar(demo_root, "demo", extra_args=["--auth-tokens-file", str(callers)]) as sc:
        stub = sc.stub()
        assert stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=_bearer(CALLER)).model == "demo"
        assert _code(stub.Reload, reco_pb2.ReloadRequest(), metadata=_bearer(CALLER)) \
            == grpc.StatusCode.PERMISSION_DENIED
        assert _code(stub.Reload, reco_pb2.ReloadRequest(), metadata=_bearer(ADMIN)) \
            == grpc.StatusCode.UNAUTHENTICATED


def test_tokens_files_also_come_from_the_environment(demo_root: pathlib.Path, token_files: tuple[pathlib.Path,
                                                     pathlib.Path]) -> None:
    callers, admins = token_files
    env = {"RECO_AUTH_TOKENS_FILE": str(callers), "RECO_ADMIN_TOKENS_FILE": str(admins)}
    with running_sidecar(demo_root, "demo", env=env) as sc:
        stub = sc.stub()
        assert _code(stub.GetModelStatus, reco_pb2.GetModelStatusRequest()) == grpc.StatusCode.UNAUTHENTICATED
        assert stub.Reload(reco_pb2.ReloadRequest(), metadata=_bearer(ADMIN)).new_version == 1


def test_a_tokens_file_without_tokens_stops_the_sidecar(demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("# nobody yet\n\n")
    proc = subprocess.Popen(command(demo_root, "demo", 1, ["--auth-tokens-file", str(empty)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        stop_tree(proc)
    assert proc.returncode == ExitCode.CONFIG and b'"ready"' not in out
    assert f"{empty}: holds no tokens" in err.decode()


def test_reading_tokens_ignores_blanks_and_comments_and_refuses_inner_whitespace(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "t"
    f.write_text("\n# comment\n a \r\nb\n\n")
    assert tokens.read_tokens(f) == ["a", "b"]
    f.write_text("two words\n")
    with pytest.raises(ValueError, match="whitespace"):
        tokens.read_tokens(f)
    with pytest.raises(ValueError, match="cannot read"):
        tokens.read_tokens(tmp_path / "missing")


def test_an_admin_token_is_known_as_admin_and_others_as_callers_or_nobody() -> None:
    a = auth.Authenticator(["c1", "c2"], ["adm"])
    assert (a.role("adm"), a.role("c2"), a.role("c3"), a.role("")) == (auth.Role.ADMIN, auth.Role.CALLER,
                                                                       None, None)
