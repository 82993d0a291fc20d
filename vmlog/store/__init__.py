"""The content-addressed store of immutable base images shared by all projects of a vmlog home."""

from vmlog.store.images import ImageStore, StoredImage

__all__ = ["ImageStore", "StoredImage"]
