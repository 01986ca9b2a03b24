"""Proto requests to domain queries: validation with the offending field named."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reco_sidecar.common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from reco_sidecar.common.ids import id_problem as id_problem  # the service checks batch ids with it
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Provenance, RecQuery, Restriction
from reco_sidecar.gen.reco.v1 import reco_pb2


@dataclass(frozen=True)
class Limits:
    max_n: int
    max_offset: int
    max_ids: int
    max_batch_users: int


def check_id(value: str, field: str) -> None:
    problem = id_problem(value)
    if problem is not None:
        raise InvalidArgument(problem, field=field)


def check_page(n: int, offset: int, limits: Limits) -> None:
    if not 1 <= n <= limits.max_n:
        raise InvalidArgument(f"must be between 1 and {limits.max_n}, got {n}", field="n")
    if not 0 <= offset <= limits.max_offset:
        raise InvalidArgument(f"must be between 0 and {limits.max_offset}, got {offset}", field="offset")


def check_list(values: Sequence[str], field: str, limit: int) -> None:
    if len(values) > limit:
        raise ResourceExhausted(f"{len(values)} ids, at most {limit} allowed", field=field)


_NO_RESTRICTION = Restriction.none()


def restriction(model: Model, f: reco_pb2.Filter, limits: Limits) -> Restriction:
    if not (len(f.exclude_item_ids) or len(f.candidate_item_ids) or len(f.categories) or len(f.tags)):
        return _NO_RESTRICTION  # most calls: nothing to look up
    check_list(f.exclude_item_ids, "filter.exclude_item_ids", limits.max_ids)
    check_list(f.candidate_item_ids, "filter.candidate_item_ids", limits.max_ids)
    # Unknown ids cannot be recommended anyway: excluding or allowing them changes nothing.
    exclude, _ = model.items.rows_of(f.exclude_item_ids)
    candidates = None
    if len(f.candidate_item_ids):
        candidates, _ = model.items.rows_of(f.candidate_item_ids)
    mask = None
    if len(f.categories) or len(f.tags):
        if model.catalog is None:
            field = "filter.categories" if len(f.categories) else "filter.tags"
            raise FailedPrecondition(f"model {model.name} version {model.version} has no item metadata",
                                     field=field)
        mask = model.catalog.mask(list(f.categories), list(f.tags))
    return Restriction(exclude, candidates, mask)


def recommend_query(
    model: Model, req: reco_pb2.RecommendRequest, limits: Limits, r: Restriction,
    online: Callable[[str], Any] | None = None,
) -> RecQuery | None:
    """The query to score, or None when the user is unknown and popular items are the answer.
    `online` finds the user's online vector (serving.online.OnlineUser), if online learning is on."""
    check_id(req.user_id, "user_id")
    check_list(req.recent_item_ids, "recent_item_ids", limits.max_ids)
    user_row = model.users.row(req.user_id)
    include_seen = req.filter.include_seen
    if len(req.recent_item_ids):
        recent, _ = model.items.rows_of(req.recent_item_ids)
        if len(recent):
            return RecQuery(req.offset, req.n, r, user_row=user_row, vector=model.fold_in(np.unique(recent)),
                            include_seen=include_seen, seen_rows=recent)
    found = online(req.user_id) if online is not None else None
    if found is not None and found.vector is not None:
        return RecQuery(req.offset, req.n, r, user_row=user_row, vector=found.vector, include_seen=include_seen,
                        seen_rows=found.seen_rows,
                        source=Provenance.ONLINE if found.known else Provenance.ONLINE_NEW_USER,
                        online_sums=(found.sum_rows, found.sum_values), shown=(found.shown_rows, found.shown_counts))
    if user_row is None:
        if req.disable_fallback:
            raise NotFound(f"unknown user {req.user_id!r}", field="user_id")
        return None
    # Impressions alone (no vector solved): the trained vector, with the user's shown counts.
    shown = (found.shown_rows, found.shown_counts) if found is not None else None
    return RecQuery(req.offset, req.n, r, user_row=user_row, include_seen=include_seen, shown=shown)
