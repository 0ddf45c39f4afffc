"""Exceptions raised by granite-index; each names the problem and what to do."""

from __future__ import annotations


class GraniteIndexError(Exception):
    """Base class of granite-index errors."""


class NotACollectionError(GraniteIndexError, FileNotFoundError):
    """The path does not hold a granite-index collection."""


class FormatVersionError(GraniteIndexError):
    """The collection was written by a newer format than this version can read."""


class ModelNotFoundError(GraniteIndexError, OSError):
    """A model could be found neither on disk nor in the Hugging Face cache."""


class UnknownIdError(GraniteIndexError, KeyError):
    """Ids that are not in the collection / index."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateIdError(GraniteIndexError, ValueError):
    """Ids given twice in one call, or already present."""


class ConflictError(GraniteIndexError):
    """Another writer changed the same documents since this handle last read the collection (an
    id it added, or deleted); nothing was written."""


class LockTimeoutError(GraniteIndexError, TimeoutError):
    """Another writer held the collection's lock for longer than the handle's lock timeout."""


class UnsupportedPathError(GraniteIndexError, ValueError):
    """A collection path this version cannot hold a collection at (an object-storage URI such
    as ``s3://bucket/c``): collections are local folders."""
