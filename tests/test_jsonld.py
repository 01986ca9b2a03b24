"""JSON-LD from a worker's real gRPC server (in this process), checked by a real JSON-LD
processor (pyld)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from pyld import jsonld

from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving.jsonld import CONTEXT_PATH
from tests.support.server import InProcess, in_process_sidecar

SCHEMA = "https://schema.org/"
RECO = "https://w3id.org/reco-sidecar/ns#"
IRI = "https://uro.test/posts/{id}"


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[InProcess]:
    with in_process_sidecar(demo_root, "demo", extra_args=["--jsonld-item-iri", IRI]) as s:
        yield s


def _expand(doc: str) -> dict[str, Any]:
    # The context is inline, so expansion must not need the network: forbid any fetch.
    def no_fetch(url: str, options: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError(f"JSON-LD processor tried to fetch {url}")

    expanded = jsonld.expand(json.loads(doc), {"documentLoader": no_fetch})
    assert len(expanded) == 1
    node: dict[str, Any] = expanded[0]
    return node


def _check_list(node: dict[str, Any], ids: list[str], scores: list[float], first: int, version: int,
                source: str) -> None:
    assert node["@type"] == [SCHEMA + "ItemList"]
    assert node[SCHEMA + "numberOfItems"][0]["@value"] == len(ids)
    assert node[SCHEMA + "itemListOrder"][0]["@id"] == SCHEMA + "ItemListOrderDescending"
    assert node[RECO + "model"][0]["@value"] == "demo"
    assert node[RECO + "modelVersion"][0]["@value"] == version
    assert node[RECO + "source"][0]["@value"] == source
    elements = sorted(node[SCHEMA + "itemListElement"], key=lambda e: e[SCHEMA + "position"][0]["@value"])
    assert [e[SCHEMA + "position"][0]["@value"] for e in elements] == list(range(first, first + len(ids)))
    assert [e["@type"] for e in elements] == [[SCHEMA + "ListItem"]] * len(ids)
    assert [e[SCHEMA + "item"][0]["@id"] for e in elements] == [IRI.replace("{id}", i) for i in ids]
    assert [e[RECO + "score"][0]["@value"] for e in elements] == pytest.approx(scores, rel=1e-6)


def test_recommend_jsonld_expands_to_schema_org_item_list(sidecar: InProcess) -> None:
    resp = sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000002", n=7))
    _check_list(_expand(resp.jsonld), [i.item_id for i in resp.items], [i.score for i in resp.items], 1,
                resp.version, "model")


def test_paged_jsonld_positions_continue_from_the_offset(sidecar: InProcess) -> None:
    resp = sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000002", n=4, offset=6))
    _check_list(_expand(resp.jsonld), [i.item_id for i in resp.items], [i.score for i in resp.items], 7,
                resp.version, "model")


def test_similar_jsonld_names_the_item_it_is_about(sidecar: InProcess) -> None:
    resp = sidecar.stub().Similar(reco_pb2.SimilarRequest(item_id="i0000003", n=5))
    node = _expand(resp.jsonld)
    _check_list(node, [i.item_id for i in resp.items], [i.score for i in resp.items], 1, resp.version, "ann")
    assert node[SCHEMA + "about"][0]["@id"] == IRI.replace("{id}", "i0000003")


def test_fallback_jsonld_says_popular(sidecar: InProcess) -> None:
    resp = sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id="newcomer", n=3))
    _check_list(_expand(resp.jsonld), [i.item_id for i in resp.items], [i.score for i in resp.items], 1,
                resp.version, "popular")


def test_the_context_file_is_the_one_embedded(sidecar: InProcess) -> None:
    resp = sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000002", n=1))
    assert json.loads(resp.jsonld)["@context"] == json.loads(CONTEXT_PATH.read_text())["@context"]
