from __future__ import annotations

from reco_sidecar.serving import protogen


def test_committed_stubs_match_the_proto() -> None:
    assert protogen.main(["--check"]) == 0
