"""States and base images in OCI registries: references, credentials, the distribution API, the artefact mapping."""
