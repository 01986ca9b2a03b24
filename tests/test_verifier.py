"""The verification helper process (runtime/supervisor/verifier.py) on its own: a real forked
helper, real versions on disk, the typed wire in between."""

from __future__ import annotations

import os
import pathlib
import select
import signal
from collections.abc import Iterator

import pytest

from reco_sidecar.artifact import checksums
from reco_sidecar.artifact.version_choice import Chosen, NoVersion, Verdict
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST
from reco_sidecar.runtime.supervisor.verifier import Verifier
from tests.support.versions import copy_version, flip_byte


@pytest.fixture
def verifier(demo_copy: pathlib.Path) -> Iterator[Verifier]:
    v = Verifier(demo_copy / "demo")
    v.start([])
    yield v
    v.kill()


def answer(v: Verifier, timeout: float = 60.0) -> tuple[int, Verdict] | None:
    """The helper's answer once its channel is readable; the bound only stops a broken run."""
    assert select.select([v], [], [], timeout)[0], "the verifier did not answer"
    return v.read()


def test_latest_skips_a_bad_version_and_hands_over_the_digests(verifier: Verifier,
                                                                demo_copy: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    copy_version(model_dir, 1, 2)
    flip_byte(model_dir / "2" / "item_factors.npy")
    checksums._verified.clear()  # what this process knows comes from the helper only
    assert verifier.submit(1, LATEST, frozenset())
    result = answer(verifier)
    assert result is not None
    ticket, verdict = result
    assert ticket == 1 and isinstance(verdict, Chosen) and verdict.version == 1
    assert [v for v, _ in verdict.bad] == [2] and "item_factors.npy" in verdict.bad[0][1]
    # The digests the helper computed are known here now: the workers get them with Prepare.
    assert {key for key, _ in checksums.known(model_dir / "1")}
    assert verifier.job is None


def test_a_missing_number_is_not_found_and_known_bad_versions_are_skipped(verifier: Verifier,
                                                                          demo_copy: pathlib.Path) -> None:
    assert verifier.submit(1, 7, frozenset())
    result = answer(verifier)
    assert result is not None and isinstance(result[1], NoVersion)
    assert (result[1].kind, result[1].field) == (ErrorKind.NOT_FOUND, "version")
    assert verifier.submit(2, LATEST, frozenset({1}))
    result = answer(verifier)
    assert result is not None and isinstance(result[1], NoVersion) and result[0] == 2


def test_a_helper_that_dies_fails_its_job_and_the_next_job_gets_a_new_helper(verifier: Verifier) -> None:
    first = verifier.pid
    os.kill(first, signal.SIGKILL)  # dead before it could answer: its channel reads as closed
    verifier.submit(5, LATEST, frozenset())
    assert answer(verifier) is None
    failed = verifier.died()
    assert failed is not None
    ticket, verdict = failed
    assert ticket == 5 and isinstance(verdict, NoVersion)
    assert verdict.kind is ErrorKind.FAILED_PRECONDITION and "died" in verdict.message
    assert not verifier.running and verifier.pid == 0
    verifier.start([])
    assert verifier.pid not in (0, first)
    assert verifier.submit(6, LATEST, frozenset())
    again = answer(verifier)
    assert again is not None and again[0] == 6 and isinstance(again[1], Chosen)
