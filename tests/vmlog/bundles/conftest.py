"""Makes the bundle fixtures (base image, qcow2 chain, signing key) available to every bundle test."""

from bundle_fixtures import chain, signing_key  # noqa: F401
