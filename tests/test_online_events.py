"""Feedback events are valued with the version's own types, and a bad one is refused naming
its field by its place in the batch."""

from __future__ import annotations

import math

import pytest

from reco_sidecar.common.errors import FailedPrecondition, InvalidArgument
from reco_sidecar.engine.eventtypes import EventType, from_weights
from reco_sidecar.online.events import Event, validate

TYPES = from_weights({"view": 0.1, "like": 0.7, "skip": -0.3, "hide": -1.0})


def ev(i: int = 0, **change: object) -> Event:
    base: dict[str, object] = {"event_id": f"e{i}", "user_id": "u1", "item_id": "i1", "type": "like",
                               "weight": None, "time": 1_700_000_000.0}
    base.update(change)
    return Event(**base)  # type: ignore[arg-type]


def test_values_are_type_weight_times_event_weight_and_hide_alone_of_the_negatives_excludes() -> None:
    got = validate([ev(0), ev(1, weight=2.0), ev(2, type="skip"), ev(3, type="hide")], TYPES)
    assert [v.value for v in got] == [0.7, 1.4, -0.3, -1.0]
    assert [v.excludes for v in got] == [True, True, False, True]
    assert TYPES["view"] == EventType(0.1, True)


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"type": "bookmark"}, "type", "'bookmark' is not one of the model's event types (hide, like, skip, view)"),
    ({"type": "x" * 10_000}, "type", "this type is not one of"),
    ({"weight": math.nan}, "weight", "finite number above 0"),
    ({"weight": math.inf}, "weight", "finite number above 0"),
    ({"weight": 0.0}, "weight", "above 0"),
    ({"weight": -1.0}, "weight", "above 0"),
    ({"weight": 1e7}, "weight", "at most"),
    ({"event_id": ""}, "event_id", "must not be empty"),
    ({"user_id": "u" * 513}, "user_id", "longer than 512 bytes"),
    ({"item_id": "é" * 257}, "item_id", "longer than 512 bytes"),
    ({"event_id": "x" * 600}, "event_id", "longer than 512 bytes"),
    ({"time": math.nan}, "time", "finite Unix seconds"),
    ({"time": -1.0}, "time", "finite Unix seconds"),
    ({"time": 1.7e12}, "time", "finite Unix seconds"),  # milliseconds by mistake
])
def test_a_bad_event_is_refused_naming_its_field(change: dict[str, object], field: str, message: str) -> None:
    batch = [ev(0), ev(1), ev(2), ev(3, **change)]
    with pytest.raises(InvalidArgument) as caught:
        validate(batch, TYPES)
    assert caught.value.field == f"events[3].{field}"
    assert message in caught.value.message
    # a huge id is never echoed back
    assert len(caught.value.message) < 200


def test_an_id_of_exactly_512_bytes_is_accepted() -> None:
    assert validate([ev(0, user_id="u" * 512, item_id="é" * 256)], TYPES)[0].value == 0.7


def test_a_version_that_records_no_types_accepts_no_events() -> None:
    with pytest.raises(FailedPrecondition, match="retrain"):
        validate([ev(0)], {})


def test_types_from_training_weights_refuse_a_non_finite_weight_and_read_zero_as_shown() -> None:
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite number"):
            from_weights({"view": bad})
    shown = from_weights({"shown": 0.0})["shown"]
    assert shown.shown and not shown.excludes
