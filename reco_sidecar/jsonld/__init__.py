"""JSON-LD rendering of a ranked list as a schema.org ItemList.

The context (context.jsonld beside this file) is embedded in every document, so a
consumer expands it without fetching anything.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

CONTEXT_PATH = pathlib.Path(__file__).with_name("context.jsonld")
_CONTEXT = json.loads(CONTEXT_PATH.read_text())["@context"]
# Serialized once: every response splices the same bytes in.
_PREFIX = '{"@context":' + json.dumps(_CONTEXT, separators=(",", ":")) + ","


class Renderer:
    def __init__(self, item_iri_template: str) -> None:
        if "{id}" not in item_iri_template:
            raise ValueError("the item IRI template must contain {id}")
        self._template = item_iri_template

    def item_iri(self, item_id: str) -> str:
        from urllib.parse import quote

        return self._template.replace("{id}", quote(item_id, safe=""))

    def render(
        self,
        *,
        model: str,
        version: int,
        source: str,
        item_ids: Sequence[str],
        scores: Sequence[float],
        first_position: int,
        about: str | None = None,
    ) -> str:
        elements = [
            {"@type": "ListItem", "position": first_position + i, "item": {"@id": self.item_iri(iid)},
             "score": float(s)}
            for i, (iid, s) in enumerate(zip(item_ids, scores, strict=True))
        ]
        body: dict[str, object] = {
            "@type": "ItemList",
            "itemListOrder": "ItemListOrderDescending",
            "numberOfItems": len(elements),
            "model": model,
            "modelVersion": version,
            "source": source,
            "itemListElement": elements,
        }
        if about is not None:
            body["about"] = {"@id": self.item_iri(about)}
        return _PREFIX + json.dumps(body, separators=(",", ":"))[1:]
