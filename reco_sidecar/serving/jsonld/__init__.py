"""JSON-LD rendering of a ranked list as a schema.org ItemList.

The context (context.jsonld beside this file) is embedded in every document, so a
consumer expands it without fetching anything.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Sequence

CONTEXT_PATH = pathlib.Path(__file__).with_name("context.jsonld")
_CONTEXT = json.loads(CONTEXT_PATH.read_text())["@context"]
# Serialized once: every response splices the same bytes in.
_PREFIX = '{"@context":' + json.dumps(_CONTEXT, separators=(",", ":")) + ","
# Bounds the memoized IRIs of one process (a catalogue of this size costs ~10 MB).
_CACHE_LIMIT = 200_000


class Renderer:
    def __init__(self, item_iri_template: str) -> None:
        if "{id}" not in item_iri_template:
            raise ValueError("the item IRI template must contain {id}")
        self._template = item_iri_template
        self._cache: dict[str, str] = {}

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
        experiment: str = "",
        arm: str = "",
        reasons: Sequence[Sequence[tuple[str, float]]] | None = None,
    ) -> str:
        # Rendered on every response: string pieces and memoized IRIs instead of json.dumps
        # over nested dicts, which was a sixth of a Recommend call's CPU.
        if reasons is None:
            elements = ",".join(
                f'{{"@type":"ListItem","position":{first_position + i},"item":{{"@id":{self._iri_json(iid)}}},'
                f'"score":{_number(s)}}}'
                for i, (iid, s) in enumerate(zip(item_ids, scores, strict=True))
            )
        else:
            # Each reason as a schema.org PropertyValue: the history item it names, its share.
            elements = ",".join(
                f'{{"@type":"ListItem","position":{first_position + i},"item":{{"@id":{self._iri_json(iid)}}},'
                f'"score":{_number(s)},"additionalProperty":['
                + ",".join(f'{{"@type":"PropertyValue","propertyID":"reason",'
                           f'"valueReference":{{"@id":{self._iri_json(rid)}}},"value":{_number(share)}}}'
                           for rid, share in why)
                + "]}"
                for i, (iid, s, why) in enumerate(zip(item_ids, scores, reasons, strict=True))
            )
        about_part = f',"about":{{"@id":{self._iri_json(about)}}}' if about is not None else ""
        if arm:
            about_part += f',"experiment":{json.dumps(experiment)},"arm":{json.dumps(arm)}'
        return (f'{_PREFIX}"@type":"ItemList","itemListOrder":"ItemListOrderDescending",'
                f'"numberOfItems":{len(item_ids)},"model":{json.dumps(model)},"modelVersion":{int(version)},'
                f'"source":{json.dumps(source)},"itemListElement":[{elements}]{about_part}}}')

    def _iri_json(self, item_id: str) -> str:
        cached = self._cache.get(item_id)
        if cached is None:
            cached = json.dumps(self.item_iri(item_id))
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[item_id] = cached
        return cached


def _number(value: float) -> str:
    """A JSON number; JSON has no infinity or NaN, so those become null."""
    return repr(float(value)) if math.isfinite(value) else "null"
