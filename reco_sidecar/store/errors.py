"""Why a store operation failed. Each message names the object and the problem."""

from __future__ import annotations


class StoreError(Exception):
    """The store refused, lacks or garbled something; retrying the same thing will not help."""


class StoreUnreachable(StoreError):
    """The store did not answer (network, timeout, 5xx); the next attempt may succeed."""


class NotPublished(StoreError):
    """The version has no marker: never published, or its upload is unfinished."""


class IntegrityError(StoreError):
    """Downloaded bytes differ from what the manifest or the marker vouches for."""
