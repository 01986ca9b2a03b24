"""Why a LibRecommender output is not imported."""

from __future__ import annotations

from reco_sidecar.common.errors import ArtifactError


class ImportRefused(ArtifactError):
    """Input that is missing, inconsistent or malformed; the message says which file and why."""


class UnsafePickle(ImportRefused):
    """A pickle inside an .npz that names something other than numpy arrays and plain values."""
