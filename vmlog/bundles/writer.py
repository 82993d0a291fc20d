"""Writes a ``.vmlstate`` bundle: a tar whose first member is the manifest, then the signature,
the logbook excerpt, one zstd-compressed block list per disk and, if asked, the memory image.

Each disk's delta is read once and goes straight into a compressor running on every core, which
also hashes it and writes the compressed bytes directly into their place in the bundle
(:mod:`vmlog.bundles.tar_layout`): one compressed copy on disk at any moment, no work files. The
room for the manifest, which carries every digest and must stay the first member, is kept at the
front and filled last. The bundle is written to a temporary sibling and renamed into place, so a
crash never leaves a half-written ``.vmlstate``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypervisors import qemu_img
from vmlog import __version__
from vmlog.bundles import manifest as mf
from vmlog.bundles.block_delta import write_block_delta
from vmlog.bundles.block_index import base_index
from vmlog.bundles.delta import DeltaStats, chain_info
from vmlog.bundles.files import fsync_dir, temp_name
from vmlog.bundles.signing import SigningKey
from vmlog.bundles.tar_layout import BLOCK, InPlaceTar
from vmlog.bundles.zstd_stream import DEFAULT_LEVEL, CompressingSink, StreamDigest, compress_file
from vmlog.errors import InvalidInput

MAIL_ATTACHMENT_LIMIT = 25 * 1000 * 1000
_PROGRESS_EVERY = 0.5  # seconds between progress lines


class RateProgress:
    """Turns (done, total) byte counts into progress lines with the rate and the time left."""

    def __init__(self, say: Callable[[str], None], what: str) -> None:
        self.say = say
        self.what = what
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < _PROGRESS_EVERY and done < total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        eta = (total - done) / rate if rate > 0 else 0.0
        self.say(f"{self.what}: {done / 1e6:.0f} of {total / 1e6:.0f} MB read, {rate / 1e6:.0f} MB/s, {eta:.0f} s left")


@dataclass(frozen=True)
class BaseImageRef:
    """The base appliance a bundle's deltas sit on, as the recipient must find or fetch it."""

    path: Path
    format: str
    sha256: str
    name: str
    version: str
    size: int
    urls: tuple[str, ...] = ()
    provenance: dict[str, Any] | None = None  # how the disk was obtained (``vmlog.store.provenance``)


@dataclass(frozen=True)
class SinceRef:
    """The state an incremental bundle builds on: its id, its digest, and its layer per disk label."""

    state_id: str
    digest: str
    layers: dict[str, Path]


@dataclass(frozen=True)
class BundleSummary:
    path: Path
    size: int
    disks: dict[str, DeltaStats]
    members: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def fits_mail(self) -> bool:
        return self.size <= MAIL_ATTACHMENT_LIMIT


def _member_entry(digest: StreamDigest) -> dict[str, Any]:
    return {
        "compression": "zstd",
        "stored_size": digest.stored_size,
        "stored_sha256": digest.stored_sha256,
        "raw_size": digest.raw_size,
        "raw_sha256": digest.raw_sha256,
    }


def _plain_entry(data: bytes) -> dict[str, Any]:
    return {"compression": "none", "stored_size": len(data), "stored_sha256": hashlib.sha256(data).hexdigest()}


class BundleWriter:
    """Collects what one state consists of and writes it as one ``.vmlstate`` file.

    ``state`` holds the state's id, name, message, author and time; ``vm_spec`` the neutral VM
    spec (``VMSpec`` as a dict); ``logbook`` the rows of the states on the path. Disks are added
    with :meth:`add_disk` (label -> top of the chain above the base, or above ``since``).
    """

    def __init__(
        self,
        base: BaseImageRef,
        *,
        state: dict[str, Any],
        vm_spec: dict[str, Any],
        logbook: list[dict[str, Any]] | None = None,
        since: SinceRef | None = None,
        memory: Path | None = None,
        memory_info: dict[str, Any] | None = None,
        signing_key: SigningKey | None = None,
        zstd_level: int = DEFAULT_LEVEL,
        workdir: Path | None = None,
        block_index_dir: Path | None = None,
        checks: bytes | None = None,
    ) -> None:
        self.base = base
        self.checks = checks  # the project's checks.json, carried as its own member when there are checks
        self.state = state
        self.vm_spec = vm_spec
        self.logbook = logbook or []
        self.since = since
        self.memory = Path(memory) if memory else None
        self.memory_info = memory_info or {}
        self.signing_key = signing_key
        self.zstd_level = zstd_level
        self.workdir = workdir  # accepted for callers; members are written in place, no work files
        self.block_index_dir = block_index_dir
        self._disks: dict[str, tuple[Path, str]] = {}

    def add_disk(self, label: str, top: Path, fmt: str = "qcow2") -> None:
        mf.check_label(label)
        if label in self._disks:
            raise InvalidInput(f"disk {label!r} was added twice")
        if self.since is not None and label not in self.since.layers:
            raise InvalidInput(f"the since state has no layer for disk {label!r}")
        self._disks[label] = (Path(top), fmt)

    def write(self, out: Path, *, progress: Callable[[str], None] | None = None) -> BundleSummary:
        """Build the deltas, compress them into their place in the bundle, and write it at ``out`` atomically.

        The bundle is written to a temporary sibling, renamed to ``out`` only once complete and synced:
        a crash or a kill never leaves a partial bundle under the final name.
        """
        if not self._disks:
            raise InvalidInput("a bundle needs at least one disk", fix="add the state's system disk")
        say = progress or (lambda _msg: None)
        out = Path(out)
        base_info = chain_info(self.base.path, self.base.format)[0]  # from the headers: one process fewer
        logbook_bytes = json.dumps(self.logbook, indent=1, default=str).encode()
        features = [mf.FEATURE_BLOCK_LIST, mf.FEATURE_ZSTD]
        if self.since is not None:
            features.append(mf.FEATURE_INCREMENTAL)
        if self.memory is not None:
            features.append(mf.FEATURE_MEMORY)
        fixed = _ManifestParts(features, base_info, datetime.now(UTC).isoformat(timespec="seconds"),
                               qemu_img.version() if self.memory else None)
        room = self._front_room(fixed)
        tmp = temp_name(out)
        try:
            with open(tmp, "wb") as fh:
                tar = InPlaceTar(fh, room)
                members: dict[str, dict[str, Any]] = {}
                tar.add_bytes(mf.LOGBOOK_NAME, logbook_bytes)
                if self.checks is not None:
                    tar.add_bytes(mf.CHECKS_NAME, self.checks)
                disks_doc, stats = self._write_disks(tar, members, say)
                members[mf.LOGBOOK_NAME] = _plain_entry(logbook_bytes)
                if self.checks is not None:
                    members[mf.CHECKS_NAME] = _plain_entry(self.checks)
                if self.memory is not None:
                    say("compressing the memory image")
                    with tar.member(mf.MEMORY_NAME) as dest:
                        members[mf.MEMORY_NAME] = _member_entry(compress_file(self.memory, dest, level=self.zstd_level))
                tar.close()
                say("writing the manifest")
                tar.fill_front(self._front_members(self._manifest(fixed, disks_doc, members), room))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(out.parent)
        return BundleSummary(out, out.stat().st_size, stats, members)

    def _disk_plan(self) -> list[tuple[str, Path, str, Path, str, str]]:
        """Per disk: label, top, its format, the reference it is compared with and that one's format, member name."""
        plan = []
        for label, (top, fmt) in self._disks.items():
            if self.since is not None:
                reference, ref_format = self.since.layers[label], "qcow2"
            else:
                reference, ref_format = self.base.path, self.base.format
            plan.append((label, top, fmt, reference, ref_format, mf.disk_member_name(label, mf.ENCODING_BLOCKS)))
        return plan

    def _front_room(self, fixed: _ManifestParts) -> dict[str, int]:
        """The exact sizes of the front members: a manifest with the widest numbers, and its signature."""
        members: dict[str, dict[str, Any]] = {}
        disks_doc = []
        for label, _top, _fmt, _ref, ref_format, name in self._disk_plan():
            members[name] = _member_entry(_PLACEHOLDER_DIGEST)
            disks_doc.append(_disk_doc(label, name, ref_format, None))
        members[mf.LOGBOOK_NAME] = _plain_entry(b"")
        if self.checks is not None:
            members[mf.CHECKS_NAME] = _plain_entry(b"")
        if self.memory is not None:
            members[mf.MEMORY_NAME] = _member_entry(_PLACEHOLDER_DIGEST)
        manifest_room = len(self._manifest(fixed, disks_doc, members))
        manifest_room += -manifest_room % BLOCK
        room = {mf.MANIFEST_NAME: manifest_room}
        if self.signing_key is not None:
            room[mf.SIGNATURE_NAME] = len(self.signing_key.sign(b" " * manifest_room))
        return room

    def _front_members(self, manifest_bytes: bytes, room: dict[str, int]) -> dict[str, bytes]:
        """The manifest padded with spaces to its room (still the same JSON), checked, and its signature."""
        if len(manifest_bytes) > room[mf.MANIFEST_NAME]:  # pragma: no cover - the room was sized on larger numbers
            raise AssertionError("the manifest outgrew the room kept for it")
        manifest_bytes = manifest_bytes.ljust(room[mf.MANIFEST_NAME])
        mf.parse(manifest_bytes)  # never write what a reader would refuse
        front = {mf.MANIFEST_NAME: manifest_bytes}
        if self.signing_key is not None:
            sig = self.signing_key.sign(manifest_bytes)
            if len(sig) > room[mf.SIGNATURE_NAME]:  # pragma: no cover - an Ed25519 signature has one length
                raise AssertionError("the signature outgrew the room kept for it")
            front[mf.SIGNATURE_NAME] = sig.ljust(room[mf.SIGNATURE_NAME])
        return front

    def _write_disks(
        self, tar: InPlaceTar, members: dict[str, dict[str, Any]], say: Callable[[str], None]
    ) -> tuple[list[dict[str, Any]], dict[str, DeltaStats]]:
        """Each disk's delta, compressed straight into its place in the bundle; its member entry goes to ``members``."""
        disks_doc = []
        stats: dict[str, DeltaStats] = {}
        say("indexing the base image's blocks")
        index = base_index(self.base.path, self.base.format, self.base.sha256, self.block_index_dir)
        for label, top, fmt, reference, ref_format, name in self._disk_plan():
            with tar.member(name) as dest, CompressingSink(dest, level=self.zstd_level) as sink:
                stats[label] = write_block_delta(
                    top,
                    fmt,
                    reference,
                    ref_format,
                    sink.write,
                    base=(self.base.path, self.base.format),
                    index=index,
                    progress=RateProgress(say, f"disk {label}"),
                )
            assert sink.digest is not None
            members[name] = _member_entry(sink.digest)
            disks_doc.append(_disk_doc(label, name, ref_format, stats[label]))
        return disks_doc, stats

    def _manifest(
        self, fixed: _ManifestParts, disks_doc: list[dict[str, Any]], members: dict[str, dict[str, Any]]
    ) -> bytes:
        doc = {
            "format": mf.FORMAT,
            "format_version": mf.FORMAT_VERSION,
            "features_required": fixed.features,
            "generator": f"vmlog {__version__}",
            "created": fixed.created,
            "state": self.state,
            "vm_spec": self.vm_spec,
            "base": {
                "name": self.base.name,
                "version": self.base.version,
                "sha256": self.base.sha256,
                "size": self.base.size,
                "format": self.base.format,
                "virtual_size": fixed.base_info["virtual-size"],
                "urls": list(self.base.urls),
                **({"provenance": self.base.provenance} if self.base.provenance else {}),
            },
            "since": ({"state_id": self.since.state_id, "digest": self.since.digest} if self.since else None),
            "disks": disks_doc,
            "memory": ({"qemu_img": fixed.qemu_img, **self.memory_info} if self.memory else None),
            "members": members,
        }
        return json.dumps(doc, indent=1, default=str).encode()


@dataclass(frozen=True)
class _ManifestParts:
    """What the manifest holds that is fixed before any member is written (so the room kept for it is exact)."""

    features: list[str]
    base_info: dict[str, Any]
    created: str
    qemu_img: str | None


_PLACEHOLDER = 10**19 - 1  # more digits than any size or count a bundle holds
_PLACEHOLDER_DIGEST = StreamDigest(_PLACEHOLDER, "0" * 64, _PLACEHOLDER, "0" * 64)


def _disk_doc(label: str, member: str, ref_format: str, stats: DeltaStats | None) -> dict[str, Any]:
    """A disk's manifest entry; without ``stats``, with placeholders as wide as any real number."""
    def number(value: int) -> int:
        return value if stats is not None else _PLACEHOLDER

    return {
        "label": label,
        "member": member,
        "encoding": mf.ENCODING_BLOCKS,
        "virtual_size": number(stats.virtual_size if stats else 0),
        "backing_format": ref_format,
        "changed_bytes": number(stats.data_bytes if stats else 0),
        "zeroed_bytes": number(stats.zero_bytes if stats else 0),
        "referenced_bytes": number(
            getattr(stats, "base_ref_bytes", 0) + getattr(stats, "copy_ref_bytes", 0) if stats else 0
        ),
    }
