"""Writes a ``.vmlstate`` bundle: a tar whose first member is the manifest, then the signature,
the logbook excerpt, one zstd-compressed block list per disk and, if asked, the memory image.

Members are prepared in a private work directory first: each disk's delta is read once and
goes straight into a compressor running on every core, which also hashes it, so only the
compressed bytes ever reach the disk. The manifest can then carry every digest and still be the
first member; the bundle is written to a temporary sibling and renamed into place, so a crash
never leaves a half-written ``.vmlstate``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
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
from vmlog.bundles.zstd_stream import DEFAULT_LEVEL, CompressingSink, StreamDigest, compress_file
from vmlog.errors import InvalidInput

MAIL_ATTACHMENT_LIMIT = 25 * 1000 * 1000
_MTIME = 0
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
    import hashlib

    return {"compression": "none", "stored_size": len(data), "stored_sha256": hashlib.sha256(data).hexdigest()}


def _tar_add(tf: tarfile.TarFile, name: str, size: int, fileobj: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = _MTIME
    info.type = tarfile.REGTYPE
    tf.addfile(info, fileobj)


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
        self.workdir = workdir
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
        """Build the deltas, compress them, and write the bundle at ``out`` atomically."""
        if not self._disks:
            raise InvalidInput("a bundle needs at least one disk", fix="add the state's system disk")
        say = progress or (lambda _msg: None)
        out = Path(out)
        base_info = chain_info(self.base.path, self.base.format)[0]  # from the headers: one process fewer
        work = Path(tempfile.mkdtemp(prefix="vmlstate-export-", dir=self.workdir))
        try:
            members: dict[str, dict[str, Any]] = {}
            files: dict[str, Path] = {}
            disks_doc, stats = self._prepare_disks(work, members, files, say)
            logbook_bytes = json.dumps(self.logbook, indent=1, default=str).encode()
            members[mf.LOGBOOK_NAME] = _plain_entry(logbook_bytes)
            if self.checks is not None:
                members[mf.CHECKS_NAME] = _plain_entry(self.checks)
            features = [mf.FEATURE_BLOCK_LIST, mf.FEATURE_ZSTD]
            if self.since is not None:
                features.append(mf.FEATURE_INCREMENTAL)
            if self.memory is not None:
                say("compressing the memory image")
                files[mf.MEMORY_NAME] = work / mf.MEMORY_NAME
                members[mf.MEMORY_NAME] = _member_entry(
                    compress_file(self.memory, files[mf.MEMORY_NAME], level=self.zstd_level)
                )
                features.append(mf.FEATURE_MEMORY)
            manifest_bytes = self._manifest(features, base_info, disks_doc, members)
            mf.parse(manifest_bytes)  # never write what a reader would refuse
            say("writing the bundle")
            self._write_archive(out, manifest_bytes, logbook_bytes, files)
            return BundleSummary(out, out.stat().st_size, stats, members)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _prepare_disks(
        self,
        work: Path,
        members: dict[str, dict[str, Any]],
        files: dict[str, Path],
        say: Callable[[str], None],
    ) -> tuple[list[dict[str, Any]], dict[str, DeltaStats]]:
        """Each disk's delta, compressed into ``work``; its member entry and file are added to ``members``/``files``."""
        disks_doc = []
        stats: dict[str, DeltaStats] = {}
        index = None
        if self._disks:
            say("indexing the base image's blocks")
            index = base_index(self.base.path, self.base.format, self.base.sha256, self.block_index_dir)
        for label, (top, fmt) in self._disks.items():
            if self.since is not None:
                reference, ref_format = self.since.layers[label], "qcow2"
            else:
                reference, ref_format = self.base.path, self.base.format
            name = mf.disk_member_name(label, mf.ENCODING_BLOCKS)
            files[name] = work / name
            with CompressingSink(files[name], level=self.zstd_level) as sink:
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
            disks_doc.append(
                {
                    "label": label,
                    "member": name,
                    "encoding": mf.ENCODING_BLOCKS,
                    "virtual_size": stats[label].virtual_size,
                    "backing_format": ref_format,
                    "changed_bytes": stats[label].data_bytes,
                    "zeroed_bytes": stats[label].zero_bytes,
                    "referenced_bytes": getattr(stats[label], "base_ref_bytes", 0)
                    + getattr(stats[label], "copy_ref_bytes", 0),
                }
            )
        return disks_doc, stats

    def _manifest(
        self,
        features: list[str],
        base_info: dict[str, Any],
        disks_doc: list[dict[str, Any]],
        members: dict[str, dict[str, Any]],
    ) -> bytes:
        doc = {
            "format": mf.FORMAT,
            "format_version": mf.FORMAT_VERSION,
            "features_required": features,
            "generator": f"vmlog {__version__}",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "state": self.state,
            "vm_spec": self.vm_spec,
            "base": {
                "name": self.base.name,
                "version": self.base.version,
                "sha256": self.base.sha256,
                "size": self.base.size,
                "format": self.base.format,
                "virtual_size": base_info["virtual-size"],
                "urls": list(self.base.urls),
                **({"provenance": self.base.provenance} if self.base.provenance else {}),
            },
            "since": ({"state_id": self.since.state_id, "digest": self.since.digest} if self.since else None),
            "disks": disks_doc,
            "memory": ({"qemu_img": qemu_img.version(), **self.memory_info} if self.memory else None),
            "members": members,
        }
        return json.dumps(doc, indent=1, default=str).encode()

    def _write_archive(self, out: Path, manifest_bytes: bytes, logbook_bytes: bytes, files: dict[str, Path]) -> None:
        """The tar, manifest first, written to a temporary sibling and renamed to ``out``."""
        tmp = temp_name(out)
        try:
            with open(tmp, "wb") as fh:
                with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tf:
                    _tar_add(tf, mf.MANIFEST_NAME, len(manifest_bytes), io.BytesIO(manifest_bytes))
                    if self.signing_key is not None:
                        sig = self.signing_key.sign(manifest_bytes)
                        _tar_add(tf, mf.SIGNATURE_NAME, len(sig), io.BytesIO(sig))
                    _tar_add(tf, mf.LOGBOOK_NAME, len(logbook_bytes), io.BytesIO(logbook_bytes))
                    if self.checks is not None:
                        _tar_add(tf, mf.CHECKS_NAME, len(self.checks), io.BytesIO(self.checks))
                    for name, path in files.items():
                        with open(path, "rb") as src:
                            _tar_add(tf, name, path.stat().st_size, src)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(out.parent)
