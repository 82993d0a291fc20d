"""A state bundle as an OCI artefact, and back: the vmlog manifest as config, each member a layer, the base apart.

The layout follows the OCI image-spec 1.1 artefact guidance (``artifactType``, a config of our own
media type, ``subject`` for the parent) as ORAS writes it: each layer's ``org.opencontainers.image.title``
is the bundle member's name, so ``oras pull`` gives the same files ``tar xf`` of the ``.vmlstate`` would.
The base appliance is a separate artefact (one layer: the image file, whose digest is the manifest's
``base.sha256``), so a repository holds each base once however many states sit on it.

Everything read from a registry is hostile: :func:`parse_state_manifest` bounds the manifest (size,
depth via :mod:`vmlog.safejson`, counts), and :func:`check_layers` ties every layer to the member the
verified vmlog manifest announces (same name, digest and size) before a byte of a layer is fetched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmlog import safejson
from vmlog.bundles import BundleRejected
from vmlog.bundles import manifest as mf
from vmlog.bundles.signing import MAX_SIGNATURE_MEMBER, fingerprint

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.vmlog.state.v1"
CONFIG_TYPE = "application/vnd.vmlog.state.manifest.v1+json"
SIGNATURE_TYPE = "application/vnd.vmlog.state.signature.v1+json"
LOGBOOK_TYPE = "application/vnd.vmlog.state.logbook.v1+json"
DISK_TYPES = {"blocks": "application/vnd.vmlog.state.disk.blocks.v2+zstd",
              "qcow2": "application/vnd.vmlog.state.disk.qcow2.v1+zstd"}
MEMORY_TYPE = "application/vnd.vmlog.state.memory.v1+zstd"
BASE_ARTIFACT_TYPE = "application/vnd.vmlog.base.v1"
BASE_LAYER_PREFIX = "application/vnd.vmlog.base.disk.v1."
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_BLOB).hexdigest()

TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
DESCRIPTION = "org.opencontainers.image.description"
AUTHORS = "org.opencontainers.image.authors"
STATE_ID, STATE_NAME, STATE_PROJECT = "vnd.vmlog.state.id", "vnd.vmlog.state.name", "vnd.vmlog.state.project"
PARENT_ID, PARENT_MANIFEST = "vnd.vmlog.state.parent", "vnd.vmlog.state.parent.manifest"
SIGNER, SIGNER_FINGERPRINT = "vnd.vmlog.signer", "vnd.vmlog.signer.fingerprint"
BASE_SHA256, BASE_MANIFEST, BASE_NAME = "vnd.vmlog.base.sha256", "vnd.vmlog.base.manifest", "vnd.vmlog.base.name"

MAX_OCI_MANIFEST = 256 << 10
MAX_LAYERS = mf.MAX_DISKS + 3
MAX_ANNOTATION = 4096
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_BASE_FORMAT = re.compile(r"^[a-z0-9]{1,16}$")


@dataclass(frozen=True)
class Blob:
    """One blob to push: its descriptor, and where its bytes are (a file and a byte range in it)."""

    media_type: str
    digest: str
    size: int
    path: Path
    offset: int = 0
    title: str | None = None

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.title:
            out["annotations"] = {TITLE: self.title}
        return out


@dataclass(frozen=True)
class BundleParts:
    """A ``.vmlstate`` file seen as blobs: the manifest (config), and each member where it sits in the tar."""

    manifest_bytes: bytes
    manifest: dict[str, Any]
    signature: dict[str, Any] | None
    members: list[Blob]  # in the bundle's order: signature, logbook, disks, memory


def _media_type(name: str, doc: dict[str, Any]) -> str:
    if name == mf.SIGNATURE_NAME:
        return SIGNATURE_TYPE
    if name == mf.LOGBOOK_NAME:
        return LOGBOOK_TYPE
    if name == mf.MEMORY_NAME:
        return MEMORY_TYPE
    for disk in doc["disks"]:
        if disk["member"] == name:
            return DISK_TYPES.get(mf.disk_encoding(disk), DISK_TYPES["qcow2"])
    raise BundleRejected("members", f"the bundle holds a member {name!r} its manifest does not announce")


def split_bundle(path: Path) -> BundleParts:
    """The members of a bundle this home just wrote, by offset: nothing is copied or held in memory."""
    with tarfile.open(path, "r:") as tf:
        infos = tf.getmembers()
        if not infos or infos[0].name != mf.MANIFEST_NAME:
            raise BundleRejected("members", f"{path.name} does not start with its manifest")
        manifest_bytes = tf.extractfile(infos[0]).read()  # type: ignore[union-attr]
        doc = mf.parse(manifest_bytes)
        signature = None
        blobs = []
        for info in infos[1:]:
            if info.name == mf.SIGNATURE_NAME:
                raw = tf.extractfile(info).read()  # type: ignore[union-attr]
                signature = safejson.loads(raw, what="the signature", max_bytes=MAX_SIGNATURE_MEMBER)
                digest = hashlib.sha256(raw).hexdigest()
            else:
                digest = doc["members"][info.name]["stored_sha256"]
            blobs.append(Blob(_media_type(info.name, doc), f"sha256:{digest}", info.size, path, info.offset_data,
                              info.name))
    return BundleParts(manifest_bytes, doc, signature if isinstance(signature, dict) else None, blobs)


def config_blob(parts: BundleParts) -> Blob:
    digest = "sha256:" + hashlib.sha256(parts.manifest_bytes).hexdigest()
    return Blob(CONFIG_TYPE, digest, len(parts.manifest_bytes), Path(), 0, None)


def _clip(value: object) -> str:
    return str(value if value is not None else "")[:MAX_ANNOTATION]


def state_manifest(parts: BundleParts, *, base_manifest: str | None, parent: dict[str, Any] | None) -> bytes:
    """The OCI image manifest of one state; ``parent`` is the descriptor of the ``since`` state's manifest."""
    doc, state = parts.manifest, parts.manifest["state"]
    notes = {
        CREATED: _clip(parts.manifest.get("created")), STATE_ID: _clip(state.get("id")),
        STATE_NAME: _clip(state.get("name")), STATE_PROJECT: _clip(state.get("project")),
        DESCRIPTION: _clip(state.get("message")), AUTHORS: _clip(state.get("author")),
        BASE_SHA256: "sha256:" + doc["base"]["sha256"], BASE_NAME: _clip(doc["base"].get("name")),
    }
    if base_manifest:
        notes[BASE_MANIFEST] = base_manifest
    if doc.get("since"):
        notes[PARENT_ID] = _clip(doc["since"]["state_id"])
    if parent:
        notes[PARENT_MANIFEST] = parent["digest"]
    if parts.signature:
        notes[SIGNER] = _clip(parts.signature.get("signer"))
        key = parts.signature.get("public_key")
        if isinstance(key, str):
            try:
                notes[SIGNER_FINGERPRINT] = fingerprint(base64.b64decode(key, validate=True))
            except binascii.Error:
                pass
    body: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
        "config": config_blob(parts).descriptor(), "layers": [b.descriptor() for b in parts.members],
    }
    if parent:
        body["subject"] = parent
    body["annotations"] = {k: v for k, v in notes.items() if v}
    return json.dumps(body, indent=None, separators=(",", ":"), sort_keys=False).encode()


def base_blob(path: Path, sha256: str, size: int, fmt: str, name: str) -> Blob:
    return Blob(BASE_LAYER_PREFIX + fmt, f"sha256:{sha256}", size, path, 0, name)


def base_manifest(blob: Blob, *, name: str, version: str, created: str) -> bytes:
    """The base appliance's own artefact: an empty config and the image file as its one layer."""
    body = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BASE_ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY_BLOB)},
        "layers": [blob.descriptor()],
        "annotations": {CREATED: created, TITLE: _clip(f"{name} {version}"), BASE_SHA256: blob.digest},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def base_tag(sha256: str) -> str:
    return f"base-{sha256[:16]}"


# -- reading --------------------------------------------------------------------------------------
def _descriptor(value: Any, where: str, *, max_size: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleRejected("manifest", f"{where} is not a descriptor")
    digest, size, media = value.get("digest"), value.get("size"), value.get("mediaType")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise BundleRejected("manifest", f"{where} has no sha256 digest")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= max_size:
        raise BundleRejected("size", f"{where} declares a size outside 0..{max_size}")
    if not isinstance(media, str) or len(media) > 255:
        raise BundleRejected("manifest", f"{where} has no media type")
    notes = value.get("annotations", {})
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise BundleRejected("manifest", f"{where} has annotations that are not strings")
    return value


def parse_oci_manifest(data: bytes, what: str) -> dict[str, Any]:
    """An OCI image manifest from a registry, bounded; annotations are strings, layers at most :data:`MAX_LAYERS`."""
    try:
        doc = safejson.loads(data, what=what, max_depth=8, max_bytes=MAX_OCI_MANIFEST)
    except ValueError as exc:
        raise BundleRejected("manifest", str(exc)) from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise BundleRejected("manifest", f"{what} is not an OCI image manifest (schemaVersion 2)")
    if doc.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST:
        raise BundleRejected("manifest", f"{what} is a {str(doc.get('mediaType'))[:80]}, not an OCI image manifest")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise BundleRejected("manifest", f"{what} must list at most {MAX_LAYERS} layers")
    _descriptor(doc.get("config"), f"{what}'s config", max_size=mf.MAX_MANIFEST_SIZE)
    for i, layer in enumerate(layers):
        _descriptor(layer, f"{what}'s layer {i}", max_size=1 << 50)
    if doc.get("subject") is not None:
        _descriptor(doc["subject"], f"{what}'s subject", max_size=MAX_OCI_MANIFEST)
    notes = doc.get("annotations", {})
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise BundleRejected("manifest", f"{what} has annotations that are not strings")
    return doc


def is_state(doc: dict[str, Any]) -> bool:
    return doc.get("artifactType") == ARTIFACT_TYPE or doc["config"].get("mediaType") == CONFIG_TYPE


def check_layers(oci: dict[str, Any], doc: dict[str, Any], signature_allowed: bool = True) -> list[dict[str, Any]]:
    """The layers in bundle order, each the member the vmlog manifest announces (name, digest, size).

    A layer the manifest does not announce, a member without its layer, or a layer whose digest or
    size is not the member's is refused here, before anything is downloaded.
    """
    by_title: dict[str, dict[str, Any]] = {}
    for layer in oci["layers"]:
        title = (layer.get("annotations") or {}).get(TITLE)
        if not isinstance(title, str) or title in by_title:
            raise BundleRejected("members", f"a layer has no {TITLE} or repeats {title!r}")
        by_title[title] = layer
    members = doc["members"]
    for title in by_title:
        if title not in members and not (title == mf.SIGNATURE_NAME and signature_allowed):
            raise BundleRejected("unexpected", f"the artefact has a layer {title[:80]!r} the manifest does not list")
    ordered = [by_title[mf.SIGNATURE_NAME]] if mf.SIGNATURE_NAME in by_title else []
    if ordered and ordered[0]["size"] > MAX_SIGNATURE_MEMBER:
        raise BundleRejected("size", "the signature layer is larger than a signature")
    names = [mf.LOGBOOK_NAME, *(d["member"] for d in doc["disks"])] + ([mf.MEMORY_NAME] if doc.get("memory") else [])
    for name in names:
        layer, entry = by_title.get(name), members[name]
        if layer is None:
            raise BundleRejected("members", f"the artefact lacks the layer {name}")
        if layer["digest"] != f"sha256:{entry['stored_sha256']}":
            raise BundleRejected("digest", f"layer {name} is {layer['digest']}, the manifest says"
                                 f" sha256:{entry['stored_sha256']}")
        if layer["size"] != entry["stored_size"]:
            raise BundleRejected("size", f"layer {name} declares {layer['size']} bytes, the manifest says"
                                 f" {entry['stored_size']}")
        ordered.append(layer)
    return ordered


def tar_header(name: str, size: int) -> bytes:
    """A bundle member's tar header as the writer makes it (PAX, mode 0644, fixed time)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o644, 0, tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)
