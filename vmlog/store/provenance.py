"""Where a store image came from: the artefact downloaded, the steps that made the disk from it, the disk's digest.

A state bundle names its base by the sha256 of the disk the deltas sit on. When vmlog took that
disk out of a Vagrant box, an OVA or a converted download, no URL serves those bytes: a colleague
needs the artefact and the steps. The record is written when the image enters the store
(``<store>/.provenance/<sha256>.json``), carried in the bundle's manifest, and redone and
verified step by step by the importer (:mod:`vmlog.projects.bundle_base`). A manifest's record is
untrusted: :func:`from_manifest` accepts only known steps with well-formed fields.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog.fsutil import atomic_write_text

STEP_BOX_MEMBER = "box-member"  # {"provider": "libvirt" | "virtualbox" | "vmware_desktop"}
STEP_CONVERT = "convert"  # {"format": "raw" | "qcow2" | ...}: qemu-img convert of the previous result
KNOWN_STEPS = {STEP_BOX_MEMBER: "provider", STEP_CONVERT: "format"}
_HEX = re.compile(r"^[0-9a-f]{64}$|^[0-9a-f]{128}$")
_WORD = re.compile(r"^[a-z0-9_]{1,32}$")
_FILE_NAME = re.compile(r"^[^/\x00-\x1f]{1,255}$")
MAX_URLS = 16
MAX_STEPS = 4


class ProvenanceError(ValueError):
    """A provenance record (from a manifest) that is malformed or names an unknown step."""


@dataclass(frozen=True)
class Provenance:
    """The artefact (``urls`` empty for a local file), the steps from it to the disk, and the disk."""

    artefact_digest: tuple[str, str]  # (algorithm, hex) of the downloaded or local file
    artefact_size: int | None
    artefact_name: str
    artefact_format: str  # as the store names it: "box", "qcow2", "raw", ...
    disk_sha256: str
    disk_size: int
    disk_format: str
    urls: tuple[str, ...] = ()
    steps: tuple[dict[str, str], ...] = field(default=())

    @property
    def is_local_file(self) -> bool:
        return not self.urls

    def to_manifest(self) -> dict[str, Any]:
        return {
            "artefact": {
                "urls": list(self.urls),
                "digest": {"algorithm": self.artefact_digest[0], "value": self.artefact_digest[1]},
                "size": self.artefact_size,
                "name": self.artefact_name,
                "format": self.artefact_format,
            },
            "steps": [dict(s) for s in self.steps],
            "disk": {"sha256": self.disk_sha256, "size": self.disk_size, "format": self.disk_format},
        }


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ProvenanceError(f"base.provenance: {what}")


def from_manifest(doc: Any) -> Provenance:
    """Validate an untrusted ``base.provenance`` object; raise :class:`ProvenanceError` if anything is off."""
    _need(isinstance(doc, dict), "must be an object")
    art, disk, steps = doc.get("artefact"), doc.get("disk"), doc.get("steps")
    _need(isinstance(art, dict) and isinstance(disk, dict) and isinstance(steps, list), "needs artefact, steps, disk")
    urls = art.get("urls")
    _need(isinstance(urls, list) and len(urls) <= MAX_URLS, "artefact.urls must be a short list")
    _need(all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls), "bad artefact URL")
    digest = art.get("digest")
    _need(isinstance(digest, dict) and digest.get("algorithm") in ("sha256", "sha512"), "bad artefact digest")
    _need(isinstance(digest.get("value"), str) and bool(_HEX.match(digest["value"])), "bad artefact digest")
    size = art.get("size")
    _need(size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0), "bad artefact size")
    name = art.get("name")
    _need(isinstance(name, str) and bool(_FILE_NAME.match(name)), "bad artefact name")
    _need(isinstance(art.get("format"), str) and bool(_WORD.match(art["format"])), "bad artefact format")
    _need(len(steps) <= MAX_STEPS, "too many steps")
    clean: list[dict[str, str]] = []
    for step in steps:
        _need(isinstance(step, dict) and step.get("op") in KNOWN_STEPS, f"unknown step {step!r:.80}")
        key = KNOWN_STEPS[step["op"]]
        _need(isinstance(step.get(key), str) and bool(_WORD.match(step[key])), f"step {step['op']} needs {key}")
        clean.append({"op": step["op"], key: step[key]})
    _need(isinstance(disk.get("sha256"), str) and bool(re.match(r"^[0-9a-f]{64}$", disk["sha256"])), "bad disk sha256")
    _need(isinstance(disk.get("size"), int) and disk["size"] >= 0, "bad disk size")
    _need(isinstance(disk.get("format"), str) and bool(_WORD.match(disk["format"])), "bad disk format")
    return Provenance(
        (digest["algorithm"], digest["value"]), size, name, art["format"], disk["sha256"], disk["size"], disk["format"],
        tuple(urls), tuple(clean),
    )


def _path(store_root: Path, sha256: str) -> Path:
    return Path(store_root) / ".provenance" / f"{sha256}.json"


def record(store_root: Path, provenance: Provenance) -> None:
    """Keep ``provenance`` beside the store image it made (replacing an older record)."""
    path = _path(store_root, provenance.disk_sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(provenance.to_manifest(), indent=1) + "\n")


def load(store_root: Path, sha256: str) -> Provenance | None:
    """The record of store image ``sha256``, or None (an image from before records, or none kept)."""
    try:
        return from_manifest(json.loads(_path(store_root, sha256).read_text()))
    except (OSError, ValueError):
        return None


def record_unboxed(store_root: Path, disk: Any, box: Any, provider: str) -> None:
    """Record that store image ``disk`` is the ``provider`` disk of the downloaded box ``box`` (both StoredImages)."""
    record(
        store_root,
        Provenance(
            ("sha256", box.sha256), box.size, Path(box.path).name, box.format, disk.sha256, disk.size, disk.format,
            tuple(box.urls), ({"op": STEP_BOX_MEMBER, "provider": provider},),
        ),
    )
