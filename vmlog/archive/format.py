"""The ``.vmlarchive`` layout: member names, the manifest, and the checks a reader applies to both.

See docs/archive-format.md. Every name a reader accepts is one of a few fixed shapes, so a path
from the archive can never leave the directory it is unpacked into, and every field of the manifest
is checked for type and range before anything is done with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vmlog import safejson
from vmlog.archive.errors import ArchiveRejected

FORMAT = "vmlarchive"
FORMAT_VERSION = 1
FEATURES = ("zstd", "qcow2-layers", "ovf2")
SUFFIX = ".vmlarchive"
MANIFEST = "manifest.json"
DIGESTS = "digests.json"
LOGBOOK = "logbook.json"
MAX_MANIFEST = 4 << 20
MAX_DIGESTS = 4 << 20
MAX_SMALL_MEMBER = 64 << 20  # a project file, a descriptor, the logbook dump
MAX_MEMBERS = 100_000
BASE_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_STATE_ID = re.compile(r"^[0-9a-f]{8,64}$")
_LAYER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.qcow2$")
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_BASE = re.compile(r"^base/([0-9a-f]{64})\.([a-z0-9]{2,5})\.zst$")
_RELEASE_OBJECT = re.compile(r"^releases/[A-Za-z0-9][A-Za-z0-9_-]{0,159}\.zst$")
MAX_RELEASE_OBJECT = 4 << 30


def base_member(sha256: str, fmt: str) -> str:
    return f"base/{sha256}.{fmt}.zst"


def base_file(sha256: str, fmt: str) -> str:
    """The base's path once unpacked and decompressed: what the lowest layers name as backing file."""
    return f"base/{sha256}.{fmt}"


def release_member(key: str) -> str:
    return f"releases/{key}.zst"


def release_key(member: str) -> str:
    return member[len("releases/") : -len(".zst")]


def layer_member(name: str) -> str:
    return f"layers/{name}.zst"


def ovf_member(state_id: str) -> str:
    return f"ovf/{state_id}.ovf"


def project_member(relpath: str) -> str:
    return f"project/{relpath}"


def check_layer_name(name: object) -> str:
    if not isinstance(name, str) or not _LAYER.match(name):
        raise ArchiveRejected("manifest", f"layer name {str(name)[:80]!r} is not a plain layer file name")
    return name


def check_member_name(name: str) -> str:
    """The kind of member ``name`` is (base, layer, ovf, project, logbook); anything else is refused."""
    if name in (MANIFEST, DIGESTS, LOGBOOK):
        return name
    if _BASE.match(name):
        return "base"
    if _RELEASE_OBJECT.match(name):
        return "release"
    head, _, rest = name.partition("/")
    if head == "layers" and rest.endswith(".zst") and _LAYER.match(rest[:-4]):
        return "layer"
    if head == "ovf" and rest.endswith(".ovf") and _STATE_ID.match(rest[:-4]):
        return "ovf"
    parts = rest.split("/")
    if head == "project" and 1 <= len(parts) <= 4 and all(_PART.match(p) for p in parts):
        return "project"
    raise ArchiveRejected("traversal", f"member {name[:120]!r} is not a name this archive format has")


@dataclass(frozen=True)
class Member:
    """One member as the manifest announces it: what it is, how it is stored, its bytes before compression."""

    name: str
    kind: str
    compression: str  # "zstd" or "none"
    raw_size: int
    raw_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "compression": self.compression, "raw_size": self.raw_size,
                "raw_sha256": self.raw_sha256}


def _int(value: object, what: str, high: int = 1 << 50) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise ArchiveRejected("manifest", f"{what} is not a whole number in range")
    return value


def _str(value: object, what: str, limit: int = 200) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ArchiveRejected("manifest", f"{what} is not a short text")
    return value


def _hex(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ArchiveRejected("manifest", f"{what} is not a sha256 digest")
    return value


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = safejson.loads(data, what=what, max_bytes=max(MAX_MANIFEST, MAX_DIGESTS))
    except ValueError as exc:
        raise ArchiveRejected("manifest", f"{what} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ArchiveRejected("manifest", f"{what} is not a JSON object")
    return doc


def check_manifest(doc: dict[str, Any]) -> dict[str, Member]:
    """Check the manifest's shape and cross-references; the members it announces, in archive order."""
    if doc.get("format") != FORMAT:
        raise ArchiveRejected("manifest", "this is not a vmlog project archive")
    version = _int(doc.get("format_version"), "format_version", 1000)
    if version > FORMAT_VERSION:
        raise ArchiveRejected("future-version", f"the archive has format version {version}; this vmlog reads"
                              f" {FORMAT_VERSION}", fix="update vmlog, then unarchive again")
    features = doc.get("features_required")
    if not isinstance(features, list) or any(f not in FEATURES for f in features):
        raise ArchiveRejected("unknown-feature", "the archive needs features this vmlog does not know",
                              fix="update vmlog, then unarchive again")
    members = _members(doc.get("members"))
    bases = _bases(doc.get("bases"), members)
    layers = _layers(doc.get("layers"), members, bases)
    _states(doc.get("states"), layers, members)
    project = doc.get("project")
    if not isinstance(project, dict):
        raise ArchiveRejected("manifest", "the manifest has no project")
    _str(project.get("name"), "project name", 60)
    if project.get("current") is not None and project["current"] not in {s["id"] for s in doc["states"]}:
        raise ArchiveRejected("manifest", "the project's current state is not one of the archive's states")
    return members


def _members(raw: object) -> dict[str, Member]:
    if not isinstance(raw, list) or len(raw) > MAX_MEMBERS:
        raise ArchiveRejected("manifest", "the manifest's member list is missing or too long")
    members: dict[str, Member] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise ArchiveRejected("manifest", "a member entry is not an object")
        name = _str(item.get("name"), "a member name", 300)
        kind = check_member_name(name)
        if name in members or name in (MANIFEST, DIGESTS):
            raise ArchiveRejected("duplicate", f"member {name!r} is announced twice")
        compression = item.get("compression")
        wanted = "zstd" if kind in ("base", "layer", "release") else "none"
        if compression != wanted:
            raise ArchiveRejected("manifest", f"member {name!r} must be stored with compression {wanted}")
        size = _int(item.get("raw_size"), f"the size of {name!r}")
        limit = MAX_SMALL_MEMBER if wanted == "none" else MAX_RELEASE_OBJECT if kind == "release" else 1 << 50
        if size > limit:
            raise ArchiveRejected("size", f"member {name!r} is {size} bytes (limit {limit})")
        members[name] = Member(name, kind, compression, size, _hex(item.get("raw_sha256"), f"digest of {name!r}"))
    return members


def _bases(raw: object, members: dict[str, Member]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= 16:
        raise ArchiveRejected("manifest", "the manifest lists no base image, or too many")
    bases: dict[str, dict[str, Any]] = {}
    for base in raw:
        if not isinstance(base, dict):
            raise ArchiveRejected("manifest", "a base entry is not an object")
        sha = _hex(base.get("sha256"), "a base's sha256")
        fmt = base.get("format")
        if fmt not in BASE_FORMATS:
            raise ArchiveRejected("manifest", f"a base's format {str(fmt)[:20]!r} is not a disk format")
        member = members.get(base_member(sha, fmt))
        if member is None or member.raw_sha256 != sha or member.raw_size != _int(base.get("size"), "a base's size"):
            raise ArchiveRejected("manifest", f"base {sha[:12]} has no member matching its digest and size")
        for key in ("name", "version"):
            _str(base.get(key), f"a base's {key}", 100)
        bases[sha] = base
    return bases


def _layers(raw: object, members: dict[str, Member], bases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, list):
        raise ArchiveRejected("manifest", "the manifest has no layer list")
    layers: dict[str, dict[str, Any]] = {}
    for layer in raw:
        if not isinstance(layer, dict):
            raise ArchiveRejected("manifest", "a layer entry is not an object")
        name = check_layer_name(layer.get("name"))
        if layer_member(name) not in members or name in layers:
            raise ArchiveRejected("manifest", f"layer {name!r} has no member, or is listed twice")
        _int(layer.get("virtual_size"), f"the virtual size of layer {name!r}")
        backing = layer.get("backing")
        if backing is not None:
            if not isinstance(backing, dict) or len(backing) != 1:
                raise ArchiveRejected("manifest", f"layer {name!r} has a malformed backing entry")
            if "base" in backing and backing["base"] not in bases:
                raise ArchiveRejected("backing", f"layer {name!r} backs onto a base the archive does not hold")
            if "layer" in backing:
                check_layer_name(backing["layer"])
            elif "base" not in backing:
                raise ArchiveRejected("manifest", f"layer {name!r} has a malformed backing entry")
        layers[name] = layer
    for name in layers:  # every chain ends at a base or a standalone layer, and has no loop
        seen = {name}
        backing = layers[name].get("backing")
        while backing is not None and "layer" in backing:
            parent = backing["layer"]
            if parent not in layers or parent in seen:
                raise ArchiveRejected("backing", f"layer {name!r}'s chain names a missing layer or loops")
            seen.add(parent)
            backing = layers[parent].get("backing")
    return layers


def _states(raw: object, layers: dict[str, dict[str, Any]], members: dict[str, Member]) -> None:
    if not isinstance(raw, list):
        raise ArchiveRejected("manifest", "the manifest has no state list")
    ids = set()
    for state in raw:
        if not isinstance(state, dict):
            raise ArchiveRejected("manifest", "a state entry is not an object")
        sid = state.get("id")
        if not isinstance(sid, str) or not _STATE_ID.match(sid) or sid in ids:
            raise ArchiveRejected("manifest", "a state id is not 8 to 64 lowercase hex digits, or repeats")
        ids.add(sid)
        disks = state.get("disks")
        if not isinstance(disks, dict) or not disks or any(name not in layers for name in disks.values()):
            raise ArchiveRejected("manifest", f"state {sid[:12]} names a layer the archive does not hold")
        if project_member(f"states/{sid}/state.json") not in members:
            raise ArchiveRejected("manifest", f"state {sid[:12]} has no record in the archive")
