import pytest

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.training import weights


def test_parse_reads_pairs_in_any_order_with_spaces() -> None:
    assert weights.parse(" like=0.7, view=0.1 ,share=2") == {"like": 0.7, "view": 0.1, "share": 2.0}


@pytest.mark.parametrize("text, why", [
    ("view", "is not type=weight"),
    ("=1", "is not type=weight"),
    ("view=abc", "not a number"),
    ("view=0", "at least one must be an interaction"),
    ("view=nan", "finite number"),
    ("view=inf", "finite number"),
    ("view=2e6", "between -1e\\+06 and 1e\\+06"),
    ("x" * 65 + "=1", "at most 64 bytes"),
    ("view=1,view=2", "twice"),
    (" , ", "no type=weight"),
])
def test_parse_refuses_bad_input_saying_why(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        weights.parse(text)


def test_a_zero_weight_makes_a_shown_type_training_never_reads() -> None:
    parsed = weights.parse("view=0.1,shown=0")
    assert parsed == {"view": 0.1, "shown": 0.0}
    assert weights.trained(parsed) == {"view": 0.1}


def test_a_negative_weight_makes_a_negative_type() -> None:
    assert weights.parse("view=0.1,skip=-0.3,hide=-1") == {"view": 0.1, "skip": -0.3, "hide": -1.0}


def test_defaults_rank_share_over_like_over_click_over_view() -> None:
    w = weights.DEFAULT_TYPE_WEIGHTS
    assert w["share"] > w["like"] > w["click"] > w["view"] > 0


def test_half_life_must_be_positive() -> None:
    assert weights.check_half_life(None) is None
    assert weights.check_half_life(7.0) == 7.0
    with pytest.raises(InvalidArgument):
        weights.check_half_life(0.0)
