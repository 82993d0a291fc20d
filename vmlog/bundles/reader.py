"""Reads an untrusted ``.vmlstate`` bundle: checks its header, then materialises its layers atomically in one pass.

The archive is never extracted. Its members are walked one by one; a member is accepted only if
its name is one the manifest announces and it is a regular file, and its bytes are streamed into
files this reader creates. :meth:`BundleReader.verify_header` checks the manifest, the signature,
the small members and every member's tar header against the manifest without reading the disks;
:meth:`BundleReader.materialise` then checks the local base (or ``since`` layers) and, in one pass,
streams each member through its stored and decompressed digests and size limits while writing the
layers into a staging directory next to the destination; it vets each qcow2 (format 1: header
parsed in Python first, then ``qemu-img info`` without the chain, under resource limits),
re-points its backing name at the verified local reference with ``rebase -u`` and renames the
directory into place. Any failure, a digest mismatch included, removes the staging directory:
nothing is left on disk. :meth:`BundleReader.verify` checks every digest while writing nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hypervisors import qemu_img
from hypervisors.errors import HypervisorError
from vmlog import safejson
from vmlog.bundles import manifest as mf
from vmlog.bundles.block_apply import BlockApplier
from vmlog.bundles.delta import REFERENCE_PLACEHOLDER
from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.files import fsync_dir
from vmlog.bundles.members import ReadLimits, check_member_size, read_small, stream_member, walk_members
from vmlog.bundles.qcow2_header import read_header
from vmlog.bundles.signing import MAX_SIGNATURE_MEMBER, KnownSigners, SignerInfo, verify_signature
from vmlog.errors import AlreadyExists

HASH_CHUNK = 4 << 20


@dataclass(frozen=True)
class LocalReference:
    """The recipient's copy of what the deltas sit on: the base image (or a ``since`` layer)."""

    path: Path
    format: str
    sha256: str | None = None  # None: hash the file now


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose structure, signature and digests all checked out (nothing written yet)."""

    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    signer: SignerInfo | None
    logbook: list[dict[str, Any]]
    checks: bytes | None = None  # the checks.json member as sent (validated by the importer before use)

    @property
    def base(self) -> dict[str, Any]:
        return self.manifest["base"]

    @property
    def since(self) -> dict[str, Any] | None:
        return self.manifest.get("since")

    @property
    def state(self) -> dict[str, Any]:
        return self.manifest["state"]

    @property
    def labels(self) -> list[str]:
        return [d["label"] for d in self.manifest["disks"]]


@dataclass(frozen=True)
class MaterialisedState:
    """Layers written by :meth:`BundleReader.materialise`: one qcow2 per disk label, and memory."""

    directory: Path
    disks: dict[str, Path]
    memory: Path | None
    bundle: VerifiedBundle


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _verified_signer(manifest_bytes: bytes, sig: bytes, known: KnownSigners | None) -> SignerInfo:
    """The signature's signer, after its JSON passed the depth limit; a name with control characters is refused."""
    try:
        safejson.check(sig, what="manifest.sig", max_depth=4, max_bytes=MAX_SIGNATURE_MEMBER)
    except ValueError as exc:
        raise BundleRejected("signature", f"the signature member is malformed ({exc})") from None
    signer = verify_signature(manifest_bytes, sig, known)
    mf.check_text(signer.name, "manifest.sig signer")
    return signer


class BundleReader:
    """Verifies and materialises one ``.vmlstate`` file, treating every byte of it as hostile."""

    def __init__(
        self, path: Path, *, known_signers: KnownSigners | None = None, limits: ReadLimits | None = None
    ) -> None:
        self.path = Path(path)
        self.known_signers = known_signers
        self.limits = limits or ReadLimits()
        self._verified: VerifiedBundle | None = None  # every digest checked
        self._header: VerifiedBundle | None = None  # the header checked (see verify_header)

    # -- walking the archive -------------------------------------------------------------------------

    def _walk_checked(
        self, sink: Callable[[str], Callable[[bytes], object] | None] | None, *, contents: bool = True
    ) -> tuple[dict[str, Any], bytes, SignerInfo | None, list[dict[str, Any]], bytes | None]:
        """One pass over the archive: manifest first, then every member checked against it.

        Without ``contents`` the disk and memory members are only checked by their tar headers (name,
        type, stored size, lying inside the file, declared size within the limits), not read.
        """
        file_size = self.path.stat().st_size
        with walk_members(self.path, self.limits) as members:
            first = next(members, None)
            if first is None or first[0].name != mf.MANIFEST_NAME:
                raise BundleRejected("manifest", "the first member of the archive is not manifest.json")
            manifest_bytes = read_small(first[0], first[1], mf.MAX_MANIFEST_SIZE, "manifest-size")
            if len(manifest_bytes) != first[0].size:
                raise BundleRejected("truncated", "manifest.json is truncated")
            doc = mf.parse(manifest_bytes)
            entries = doc["members"]
            signer = None
            logbook: list[dict[str, Any]] = []
            checks: bytes | None = None
            seen: set[str] = set()
            for info, member in members:
                name = info.name
                if name == mf.SIGNATURE_NAME:
                    sig = read_small(info, member, MAX_SIGNATURE_MEMBER, "signature")
                    signer = _verified_signer(manifest_bytes, sig, self.known_signers)
                    continue
                if name not in entries:
                    raise BundleRejected("unexpected", f"member {name!r} is not listed in the manifest")
                seen.add(name)
                if name == mf.LOGBOOK_NAME:
                    data = bytearray()
                    if entries[name]["stored_size"] > mf.MAX_LOGBOOK_SIZE:
                        raise BundleRejected("logbook", "the logbook excerpt is too large")
                    stream_member(info, member, entries[name], doc, data.extend, self.limits)
                    try:
                        logbook = safejson.loads(bytes(data), what="logbook.json", max_bytes=mf.MAX_LOGBOOK_SIZE)
                    except ValueError as exc:
                        raise BundleRejected("logbook", f"logbook.json is not usable JSON ({exc})") from None
                    if not isinstance(logbook, list) or not all(isinstance(r, dict) for r in logbook):
                        raise BundleRejected("logbook", "logbook.json must be a list of objects")
                    continue
                if name == mf.CHECKS_NAME:
                    if entries[name]["stored_size"] > mf.MAX_CHECKS_SIZE:
                        raise BundleRejected("checks", "checks.json is too large")
                    data = bytearray()
                    stream_member(info, member, entries[name], doc, data.extend, self.limits)
                    checks = bytes(data)
                    continue
                if not contents:
                    check_member_size(info, entries[name], doc, self.limits, file_size)
                    continue
                stream_member(info, member, entries[name], doc, sink(name) if sink else None, self.limits)
            missing = sorted(set(entries) - seen)
            if missing:
                raise BundleRejected(
                    "truncated", f"the archive ends before member(s) {', '.join(missing)}: it is truncated"
                )
        return doc, manifest_bytes, signer, logbook, checks

    # -- public API -----------------------------------------------------------------------------------

    def verify(self) -> VerifiedBundle:
        """Check everything that can be checked without the base, every member's digests included; write nothing."""
        if self._verified is None:
            doc, manifest_bytes, signer, logbook, checks = self._walk_checked(None)
            self._verified = VerifiedBundle(self.path, doc, hashlib.sha256(manifest_bytes).hexdigest(), signer, logbook,
                                            checks)
            self._header = self._verified
        return self._verified

    def verify_header(self) -> VerifiedBundle:
        """Check the manifest, the signature, the logbook and checks members, and every other member's name,
        type and stored size against the manifest, without reading the disk and memory members; write nothing.

        Enough to decide whom the bundle is from and where it goes: :meth:`materialise` checks every
        digest in the pass that writes the layers, so an import reads the bundle once, not twice.
        """
        if self._header is None:
            doc, manifest_bytes, signer, logbook, checks = self._walk_checked(None, contents=False)
            self._header = VerifiedBundle(self.path, doc, hashlib.sha256(manifest_bytes).hexdigest(), signer, logbook,
                                          checks)
        return self._header

    def _check_references(
        self,
        bundle: VerifiedBundle,
        base: LocalReference,
        since_layers: dict[str, Path] | None,
        since_id: str | None,
        since_digest: str | None,
    ) -> dict[str, LocalReference]:
        doc = bundle.manifest
        digest = base.sha256 or sha256_file(base.path)
        if digest != doc["base"]["sha256"]:
            raise BundleRejected(
                "base-digest",
                f"the local base image has sha256 {digest[:16]}…, the bundle needs {doc['base']['sha256'][:16]}…",
                fix="fetch the base appliance the bundle names (`vml appliance pull"
                f" {doc['base'].get('name') or 'NAME'} --version {doc['base'].get('version') or 'VERSION'}`),"
                " then import again",
            )
        if base.format != doc["base"]["format"]:
            raise BundleRejected("base-format", f"the bundle's base is {doc['base']['format']}, not {base.format}")
        if qemu_img.info(base.path, base.format)["virtual-size"] != doc["base"]["virtual_size"]:
            raise BundleRejected("base-size", "the local base image's virtual size differs from the bundle's")
        since = doc.get("since")
        if since is None:
            return {label: base for label in bundle.labels}
        if since_layers is None or since_id != since["state_id"] or since_digest != since["digest"]:
            raise BundleRejected(
                "since",
                f"the bundle is incremental on state {since['state_id']}, which was not given to import onto",
                fix="import the full bundle of that state first, or ask the sender for a full bundle",
            )
        refs = {}
        for label in bundle.labels:
            if label not in since_layers:
                raise BundleRejected("since", f"the since state has no layer for disk {label!r}")
            refs[label] = LocalReference(Path(since_layers[label]), "qcow2")
        return refs

    def _vet_layer(self, path: Path, disk: dict[str, Any], reference: LocalReference) -> None:
        what = f"the delta of disk {disk['label']!r}"
        header = read_header(path, what)
        if header.backing_name != REFERENCE_PLACEHOLDER:
            raise BundleRejected(
                "backing", f"{what} names backing file {header.backing_name!r}; only the bundle's base is allowed"
            )
        if header.backing_format != disk["backing_format"]:
            raise BundleRejected("backing", f"{what} has backing format {header.backing_format!r}")
        if header.virtual_size != disk["virtual_size"]:
            raise BundleRejected("qcow2-header", f"{what} has the wrong virtual size")
        try:
            info = qemu_img.info(path, "qcow2", limits=True)
        except HypervisorError as exc:
            raise BundleRejected("qcow2-header", f"qemu-img refuses {what}: {exc.message}") from exc
        data = info.get("format-specific", {}).get("data", {})
        if info.get("format") != "qcow2" or data.get("data-file") or data.get("data-file-raw"):
            raise BundleRejected("data-file", f"{what} uses an external data file")
        if info.get("backing-filename") != REFERENCE_PLACEHOLDER or info.get("virtual-size") != disk["virtual_size"]:
            raise BundleRejected("backing", f"qemu-img sees another backing file or size in {what}")
        rel = os.path.relpath(reference.path.resolve(), path.parent.resolve())
        try:
            qemu_img.run(
                ["rebase", "-q", "-u", "-f", "qcow2", "-b", rel, "-F", reference.format, str(path)],
                limits=True,
                cwd=path.parent,
            )
            qemu_img.run(["check", "-q", "-f", "qcow2", str(path)], limits=True, cwd=path.parent)
        except HypervisorError as exc:
            raise BundleRejected("qcow2-check", f"{what} is damaged: {exc.message}") from exc

    def materialise(
        self,
        dest: Path,
        *,
        base: LocalReference,
        since_layers: dict[str, Path] | None = None,
        since_id: str | None = None,
        since_digest: str | None = None,
        layer_name: Callable[[str], str] = lambda label: f"{label}.qcow2",
    ) -> MaterialisedState:
        """Write the bundle's layers into the new directory ``dest`` (a sibling staging dir first).

        The layers' backing names point (relatively) at ``base`` or at ``since_layers[label]``. One
        pass over the bundle after :meth:`verify_header`: each member is checked against its digests
        while it is written into the staging directory, which is removed on any mismatch, so a
        refused bundle leaves nothing behind.
        """
        bundle = self.verify_header()
        refs = self._check_references(bundle, base, since_layers, since_id, since_digest)
        dest = Path(dest)
        if dest.exists():
            raise AlreadyExists(f"{dest} already exists", fix="import into a new directory")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / f".{dest.name}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        targets = {d["member"]: staging / layer_name(d["label"]) for d in bundle.manifest["disks"]}
        targets[mf.MEMORY_NAME] = staging / "memory.img"
        open_files: list[BinaryIO] = []
        appliers: dict[str, BlockApplier] = {}

        def sink(name: str) -> Callable[[bytes], object]:
            if name in appliers:
                return appliers[name].feed
            fh = open(targets[name], "xb")
            open_files.append(fh)
            return fh.write

        try:
            appliers.update(_block_appliers(bundle, targets, refs, base))
            doc, manifest_bytes, _signer, _logbook, _checks = self._walk_checked(sink)
            if hashlib.sha256(manifest_bytes).hexdigest() != bundle.manifest_sha256:
                raise BundleRejected("changed", "the bundle file changed while it was being imported")
            for fh in open_files:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
            for applier in appliers.values():
                applier.finish()
            disks = {}
            for disk in doc["disks"]:
                path = targets[disk["member"]]
                if disk["member"] not in appliers:
                    self._vet_layer(path, disk, refs[disk["label"]])
                os.chmod(path, 0o644)
                disks[disk["label"]] = path
            os.chmod(staging, 0o755)
            fsync_dir(staging)
            os.rename(staging, dest)
            fsync_dir(dest.parent)
            self._verified = bundle  # every digest checked out while writing
        except BaseException:
            for fh in open_files:
                fh.close()
            for applier in appliers.values():
                applier.close()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        memory = dest / "memory.img" if doc.get("memory") else None
        return MaterialisedState(dest, {label: dest / p.name for label, p in disks.items()}, memory, bundle)


class PreparedReader(BundleReader):
    """A reader whose layers were already materialised (and so fully checked) before any project existed.

    ``vml state import`` into a new project materialises first, into a work directory, so that a refusal
    leaves no project behind; :meth:`materialise` then only moves the checked layers to where the
    project's driver wants them (same file system: renames), instead of reading the bundle again.
    """

    def __init__(self, reader: BundleReader, prepared: MaterialisedState) -> None:
        super().__init__(reader.path, known_signers=reader.known_signers, limits=reader.limits)
        self._verified = self._header = prepared.bundle  # materialising checked every digest
        self.prepared = prepared

    def materialise(
        self,
        dest: Path,
        *,
        base: LocalReference,
        since_layers: dict[str, Path] | None = None,
        since_id: str | None = None,
        since_digest: str | None = None,
        layer_name: Callable[[str], str] = lambda label: f"{label}.qcow2",
    ) -> MaterialisedState:
        bundle = self.verify_header()
        self._check_references(bundle, base, since_layers, since_id, since_digest)
        dest = Path(dest)
        if dest.exists():
            raise AlreadyExists(f"{dest} already exists", fix="import into a new directory")
        dest.mkdir(parents=True)
        try:
            disks = {}
            for label, path in self.prepared.disks.items():
                disks[label] = dest / layer_name(label)
                shutil.move(path, disks[label])
            memory = None
            if self.prepared.memory is not None and self.prepared.memory.exists():
                memory = dest / "memory.img"
                shutil.move(self.prepared.memory, memory)
            fsync_dir(dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return MaterialisedState(dest, disks, memory, bundle)


def _block_appliers(
    bundle: VerifiedBundle, targets: dict[str, Path], refs: dict[str, LocalReference], base: LocalReference
) -> dict[str, BlockApplier]:
    """One applier per block-list disk (format 2), each on a new overlay of its verified reference."""
    appliers: dict[str, BlockApplier] = {}
    try:
        for disk in bundle.manifest["disks"]:
            if mf.disk_encoding(disk) == mf.ENCODING_BLOCKS:
                ref = refs[disk["label"]]
                appliers[disk["member"]] = BlockApplier(
                    targets[disk["member"]],
                    label=disk["label"],
                    virtual_size=disk["virtual_size"],
                    reference=(ref.path, ref.format),
                    base=(base.path, base.format),
                    base_size=bundle.base["virtual_size"],
                )
    except BaseException:
        for applier in appliers.values():
            applier.close()
        raise
    return appliers
