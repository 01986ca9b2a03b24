"""What the experiments and rules readers share: the supervisor's side of a file rollout that
reads the operator's file (I/O the pure rollout never does), hands a checked copy to the
rollout as a payload, and tells the watch whether the file changed since it last served or
refused it."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from reco_sidecar.common.errors import RecoError
from reco_sidecar.runtime.payload import PayloadDir
from reco_sidecar.runtime.supervisor.rollout import Candidate


class _Loaded(Protocol):
    @property
    def text(self) -> str: ...


L = TypeVar("L", bound=_Loaded)


class FileReader(Generic[L]):
    """The file as a flag names it (None: not given). `read` returns its text, bounded and
    never blocking (it runs on the supervisor's loop), raising a RecoError otherwise."""

    def __init__(self, path: pathlib.Path | None, payloads: PayloadDir, read: Callable[[pathlib.Path], str]) -> None:
        self.path = path
        self.payloads = payloads
        self._read = read
        # The text of the last file refused ("" for none; None: it could not be read), so that
        # the watch reports a bad file once instead of at every poll.
        self.refused: str | None = ""
        self._offered = ""  # the text of the last file handed to the rollout

    def workers_refused(self) -> None:
        """The workers refused the file last offered (one could not stage it): like a file
        the supervisor refused, it is reported once and retried when it changes."""
        self.refused = self._offered

    def _checked(self, load: Callable[[pathlib.Path], L]) -> Candidate[L] | RecoError:
        assert self.path is not None
        try:
            loaded = load(self.path)
        except RecoError as e:
            self.refused = self._text()
            return e
        self.refused, self._offered = "", loaded.text
        return Candidate(loaded, self.payloads.write(loaded.text.encode("utf-8")))

    def changed(self, serving: _Loaded) -> bool:
        """Whether the file differs from what serves and from what was last refused."""
        if self.path is None:
            return False
        text = self._text()
        return text != serving.text and text != self.refused

    def _text(self) -> str | None:
        assert self.path is not None
        try:
            return self._read(self.path)
        except RecoError:
            return None
