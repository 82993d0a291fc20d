"""Moving states through a registry: push a bundle's blobs and manifests, fetch a state back into a bundle file.

Push sends a blob only when the repository lacks it (``HEAD`` first; a cross-repository mount when the
caller names a repository that holds it), so a second push of the same state sends manifests only.
Fetch resolves a reference to its manifest, parses and checks it and the vmlog manifest it carries
(:mod:`vmlog.registry.mapping`), then streams each layer, hashed on the way, into a ``.vmlstate`` laid
out exactly as the bundle writer lays it out, for the bundle reader to verify like any other.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vmlog.bundles import BundleRejected
from vmlog.bundles import manifest as mf
from vmlog.registry import mapping
from vmlog.registry.client import RegistryClient
from vmlog.registry.errors import RegistryError
from vmlog.registry.reference import Reference

MAX_TAGS_SCANNED = 500
Say = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def push_blob(client: RegistryClient, repo: str, blob: mapping.Blob, *, data: bytes | None = None,
              mount_from: str | None = None, chunk_size: int | None = None, say: Say = _quiet) -> str:
    """Make ``blob`` present in ``repo``: "present", "mounted" or "uploaded" says what it took."""
    if client.blob_exists(repo, blob.digest):
        client.transfer.present.append(blob.digest)
        return "present"
    if mount_from and mount_from != repo and client.mount_blob(repo, blob.digest, mount_from):
        return "mounted"
    say(f"uploading {blob.title or blob.media_type} ({blob.size / 1e6:.1f} MB)")
    if data is not None:
        client.upload_blob(repo, blob.digest, io.BytesIO(data), blob.size, chunk_size=chunk_size)
    else:
        with open(blob.path, "rb") as fh:
            fh.seek(blob.offset)
            client.upload_blob(repo, blob.digest, fh, blob.size, chunk_size=chunk_size)
    return "uploaded"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def push_base(client: RegistryClient, repo: str, blob: mapping.Blob, *, name: str, version: str,
              mount_from: str | None = None, chunk_size: int | None = None, say: Say = _quiet) -> str:
    """The base appliance as its own artefact in ``repo`` (tag ``base-<sha256 prefix>``); its manifest digest."""
    tag = mapping.base_tag(blob.digest.split(":", 1)[1])
    existing = client.get_manifest(repo, tag, accept=mapping.OCI_MANIFEST, max_bytes=mapping.MAX_OCI_MANIFEST)
    if existing is not None:
        doc = mapping.parse_oci_manifest(existing[0], f"{repo}:{tag}")
        if [layer["digest"] for layer in doc["layers"]] == [blob.digest] and client.blob_exists(repo, blob.digest):
            client.transfer.present.append(blob.digest)
            return "sha256:" + hashlib.sha256(existing[0]).hexdigest()
    push_blob(client, repo, blob, mount_from=mount_from, chunk_size=chunk_size, say=say)
    empty = mapping.Blob(mapping.EMPTY_TYPE, mapping.EMPTY_DIGEST, len(mapping.EMPTY_BLOB), Path())
    push_blob(client, repo, empty, data=mapping.EMPTY_BLOB)
    body = mapping.base_manifest(blob, name=name, version=version, created=_now())
    return client.put_manifest(repo, tag, body, mapping.OCI_MANIFEST)


@dataclass(frozen=True)
class RemoteState:
    """A state's artefact as the registry gave it, parsed and checked, nothing of its layers fetched yet."""

    reference: Reference
    digest: str  # of the OCI manifest
    oci: dict[str, Any]
    config: bytes  # the vmlog manifest's exact bytes
    manifest: dict[str, Any]  # parsed and validated by vmlog.bundles.manifest.parse
    layers: list[dict[str, Any]]  # in bundle order

    @property
    def annotations(self) -> dict[str, str]:
        return self.oci.get("annotations") or {}

    @property
    def parent(self) -> str | None:
        """The digest of the ``since`` state's manifest: ``subject``, else the annotation."""
        subject = self.oci.get("subject")
        return subject["digest"] if subject else self.annotations.get(mapping.PARENT_MANIFEST)


def fetch_manifest(client: RegistryClient, ref: Reference) -> tuple[bytes, str]:
    """The OCI manifest ``ref`` names and its digest (checked when ``ref`` names a digest)."""
    target = ref.target
    assert target is not None
    got = client.get_manifest(ref.repository, target, accept=mapping.OCI_MANIFEST, max_bytes=mapping.MAX_OCI_MANIFEST)
    if got is None:
        raise RegistryError(f"{ref.repo_ref} has no {target}",
                            fix=f"list what it holds with `vml state list --remote {ref.repo_ref}`")
    data, _media = got
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if ref.digest and digest != ref.digest:
        raise BundleRejected("digest", f"the registry sent a manifest for {ref.digest} that hashes to {digest}")
    return data, digest


def fetch_state(client: RegistryClient, ref: Reference) -> RemoteState:
    """Resolve ``ref``, check its manifest and the vmlog manifest (its config) before any layer is fetched."""
    data, digest = fetch_manifest(client, ref)
    oci = mapping.parse_oci_manifest(data, str(ref))
    if not mapping.is_state(oci):
        raise RegistryError(f"{ref} is not a vmlog state (artifactType {str(oci.get('artifactType'))[:80]})",
                            fix=f"list the states with `vml state list --remote {ref.repo_ref}`")
    config = oci["config"]
    if config.get("mediaType") != mapping.CONFIG_TYPE:
        raise BundleRejected("manifest", f"the config of {ref} is a {str(config.get('mediaType'))[:80]}")
    sink = _Memory(config["size"])
    client.download_blob(ref.repository, config["digest"], sink, size=config["size"])
    doc = mf.parse(bytes(sink.data))
    return RemoteState(ref.with_digest(digest), digest, oci, bytes(sink.data), doc, mapping.check_layers(oci, doc))


class _Memory:
    """A sink for small blobs (the config), bounded by the size its descriptor declares."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data = limit, bytearray()

    def write(self, piece: bytes) -> int:
        self.data += piece
        return len(piece)


def write_bundle(client: RegistryClient, remote: RemoteState, out: Path, say: Say = _quiet) -> Path:
    """The state's layers streamed into ``out`` as a ``.vmlstate``; every blob hashed as it arrives."""
    repo = remote.reference.repository
    with open(out, "wb") as fh:
        fh.write(mapping.tar_header(mf.MANIFEST_NAME, len(remote.config)))
        fh.write(remote.config + mapping.tar_padding(len(remote.config)))
        for layer in remote.layers:
            title = layer["annotations"][mapping.TITLE]
            say(f"downloading {title} ({layer['size'] / 1e6:.1f} MB)")
            fh.write(mapping.tar_header(title, layer["size"]))
            client.download_blob(repo, layer["digest"], fh, size=layer["size"])
            fh.write(mapping.tar_padding(layer["size"]))
        fh.write(mapping.TAR_END)
        fh.flush()
        os.fsync(fh.fileno())
    return out


def fetch_base(client: RegistryClient, repo: str, sha256: str, size: int, out: Path, say: Say = _quiet) -> bool:
    """The base image's blob into ``out`` if ``repo`` has it (digest and size checked); False if it has not."""
    digest = f"sha256:{sha256}"
    if not client.blob_exists(repo, digest):
        return False
    say(f"downloading the base appliance from {client.host}/{repo} ({size / 1e6:.1f} MB)")
    try:
        with open(out, "wb") as fh:
            client.download_blob(repo, digest, fh, size=size)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return True


@dataclass(frozen=True)
class Tagged:
    """One tag of a repository: the manifest's digest and size, and the manifest if it is one vmlog reads."""

    tag: str
    digest: str
    size: int
    oci: dict[str, Any] | None


def tagged_manifests(client: RegistryClient, repo: str) -> list[Tagged]:
    """Every tag of ``repo`` (at most :data:`MAX_TAGS_SCANNED`) with its manifest; foreign ones have ``oci`` None."""
    found = []
    for tag in client.tags(repo)[:MAX_TAGS_SCANNED]:
        got = client.get_manifest(repo, tag, accept=mapping.OCI_MANIFEST, max_bytes=mapping.MAX_OCI_MANIFEST)
        if got is None:
            continue
        try:
            oci: dict[str, Any] | None = mapping.parse_oci_manifest(got[0], f"{repo}:{tag}")
        except BundleRejected:  # one foreign or broken manifest must not hide the others
            oci = None
        found.append(Tagged(tag, "sha256:" + hashlib.sha256(got[0]).hexdigest(), len(got[0]), oci))
    return found


def find_state(client: RegistryClient, repo: str, state_id: str) -> dict[str, Any] | None:
    """The descriptor of the manifest in ``repo`` whose state id is ``state_id`` (for an incremental's ``subject``)."""
    for entry in tagged_manifests(client, repo):
        if entry.oci is not None and mapping.is_state(entry.oci) \
                and (entry.oci.get("annotations") or {}).get(mapping.STATE_ID) == state_id:
            return {"mediaType": mapping.OCI_MANIFEST, "digest": entry.digest, "size": entry.size,
                    "artifactType": mapping.ARTIFACT_TYPE}
    return None
