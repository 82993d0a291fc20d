"""The ``.vmlstate`` manifest: its format version, the features a reader needs, and its validation.

The manifest is the bundle's first member and the only thing a signature covers; it names every
other member with its stored and raw sizes and sha256, so a reader can check everything before
writing anything. Validation here is structural: types, sizes, names, known features, and the
state's texts and numbers (no control characters in a name, author or signer; a creation time
that is a finite number of seconds between 1970 and 2200), so nothing from outside reaches a
terminal raw or crashes a later listing. JSON is parsed by :mod:`vmlog.safejson` (bounded depth).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from vmlog import safejson
from vmlog.bundles.errors import BundleRejected

FORMAT = "vmlstate"
FORMAT_VERSION = 2  # 2: disks as 4 KiB block lists with references; 1 (qcow2 deltas) still read
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
LOGBOOK_NAME = "logbook.json"
CHECKS_NAME = "checks.json"  # optional: the project's reproduction checks, so the receiver can rerun them
MEMORY_NAME = "memory.zst"
MAX_MANIFEST_SIZE = 1 << 20
MAX_LOGBOOK_SIZE = 16 << 20
MAX_CHECKS_SIZE = 1 << 20
MAX_DISKS = 16
MAX_JSON_DEPTH = 16
MAX_CREATED = 7258118400.0  # 2200-01-01: a creation time past it (or before 1970) is refused
MAX_TEXT = {"id": 64, "name": 200, "author": 200, "project": 200, "parent": 64, "message": 64 << 10}
MAX_RELEASE_MOUNTS = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

FEATURE_QCOW2_DELTA = "qcow2-delta"
FEATURE_ZSTD = "zstd"
FEATURE_INCREMENTAL = "incremental"
FEATURE_MEMORY = "memory-image"
FEATURE_SIGNATURE = "signature"
FEATURE_BLOCK_LIST = "block-list"
KNOWN_FEATURES = frozenset(
    {FEATURE_QCOW2_DELTA, FEATURE_ZSTD, FEATURE_INCREMENTAL, FEATURE_MEMORY, FEATURE_SIGNATURE, FEATURE_BLOCK_LIST}
)
ENCODING_QCOW2 = "qcow2"
ENCODING_BLOCKS = "blocks"

_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi")


def disk_member_name(label: str, encoding: str = ENCODING_QCOW2) -> str:
    return f"disk-{label}.{encoding}.zst"


def disk_encoding(disk: dict[str, Any]) -> str:
    """How a disk's delta is stored: a qcow2 overlay (format 1) or a block list (format 2)."""
    return disk.get("encoding", ENCODING_QCOW2)


def check_label(label: str) -> str:
    if not _LABEL.match(label):
        raise ValueError(f"invalid disk label {label!r}: use 1-32 of a-z, 0-9, '_' or '-'")
    return label


def _fail(message: str) -> BundleRejected:
    return BundleRejected("manifest", f"malformed manifest: {message}")


def _int(doc: dict[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(f"{where}.{key} must be a non-negative integer")
    return value


def _hex64(doc: dict[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not _HEX64.match(value):
        raise _fail(f"{where}.{key} must be a sha256 hex digest")
    return value


def _check_member(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise _fail(f"{where} must be an object")
    _int(entry, "stored_size", where)
    _hex64(entry, "stored_sha256", where)
    if entry.get("compression") not in ("zstd", "none"):
        raise _fail(f"{where}.compression must be 'zstd' or 'none'")
    if entry["compression"] == "zstd":
        _int(entry, "raw_size", where)
        _hex64(entry, "raw_sha256", where)


def _check_disks(disks: list[Any], base: dict[str, Any], since: Any) -> set[str]:
    """Check each disk entry; return the member names they announce."""
    names = set()
    labels = set()
    for i, disk in enumerate(disks):
        where = f"disks[{i}]"
        if not isinstance(disk, dict) or not isinstance(disk.get("label"), str):
            raise _fail(f"{where} must be an object with a label")
        if not _LABEL.match(disk["label"]) or disk["label"] in labels:
            raise _fail(f"{where}.label is invalid or repeated")
        labels.add(disk["label"])
        _int(disk, "virtual_size", where)
        if disk.get("backing_format") not in DISK_FORMATS:
            raise _fail(f"{where}.backing_format must be one of " + ", ".join(DISK_FORMATS))
        encoding = disk_encoding(disk)
        if encoding not in (ENCODING_QCOW2, ENCODING_BLOCKS):
            raise _fail(f"{where}.encoding must be {ENCODING_QCOW2!r} or {ENCODING_BLOCKS!r}")
        if disk.get("member") != disk_member_name(disk["label"], encoding):
            raise _fail(f"{where}.member must be {disk_member_name(disk['label'], encoding)!r}")
        if since is None and disk["virtual_size"] != base["virtual_size"]:
            raise _fail(f"{where}.virtual_size differs from the base's")
        names.add(disk["member"])
    return names


def check_text(value: Any, where: str, *, limit: int = 200, lines: bool = False) -> None:
    """Refuse a text from outside that is not a string, is too long, or holds control characters."""
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(f"{where} must be a string of at most {limit} characters")
    if (_CONTROL_BUT_LINES if lines else _CONTROL).search(value):
        raise BundleRejected("control-characters", f"malformed manifest: {where} holds control characters")


def created_seconds(value: object) -> float | None:
    """A state's creation time in seconds since 1970, from a number or an ISO 8601 text; None if it is neither.

    Records carry numbers; an ISO 8601 text (as some writers put there) is read too. The result is
    finite and between 1970 and 2200, or None.
    """
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        seconds = moment.timestamp()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        return None
    return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_CREATED else None


def _check_state(state: dict[str, Any]) -> None:
    """The state's record: texts without control characters, a sane creation time, bounded mounts."""
    for key, limit in MAX_TEXT.items():
        value = state.get(key)
        if value is None and key not in ("id",):
            continue
        check_text(value, f"state.{key}", limit=limit, lines=key == "message")
    created = state.get("created")
    if created is not None and created_seconds(created) is None:
        raise BundleRejected("created", "malformed manifest: state.created is not a time between 1970 and 2200")
    mounts = state.get("release_mounts")
    if mounts is not None and (
        not isinstance(mounts, list) or len(mounts) > MAX_RELEASE_MOUNTS or not all(isinstance(m, dict) for m in mounts)
    ):
        raise _fail(f"state.release_mounts must be a list of at most {MAX_RELEASE_MOUNTS} objects")


def parse(data: bytes) -> dict[str, Any]:
    """Parse and validate manifest bytes; raise :class:`BundleRejected` with what is wrong."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise BundleRejected("manifest-size", f"the manifest is {len(data)} bytes (limit {MAX_MANIFEST_SIZE})")
    try:
        doc = safejson.loads(data, what="the manifest", max_depth=MAX_JSON_DEPTH, max_bytes=MAX_MANIFEST_SIZE)
    except safejson.UnsafeJson as exc:
        raise BundleRejected("manifest-json", str(exc)) from None
    except ValueError as exc:
        raise _fail(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail("this is not a vmlstate manifest")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail("format_version must be a positive integer")
    if version > FORMAT_VERSION:
        raise BundleRejected(
            "future-version",
            f"the bundle uses format version {version}; this vmlog reads up to {FORMAT_VERSION}",
            fix="update vmlog, then import the bundle again",
        )
    required = doc.get("features_required")
    if not isinstance(required, list) or not all(isinstance(f, str) for f in required):
        raise _fail("features_required must be a list of names")
    unknown = sorted(set(required) - KNOWN_FEATURES)
    if unknown:
        raise BundleRejected(
            "unknown-feature",
            f"the bundle needs features this vmlog does not have: {', '.join(unknown)}",
            fix="update vmlog, then import the bundle again",
        )
    for key in ("state", "vm_spec", "base", "members"):
        if not isinstance(doc.get(key), dict):
            raise _fail(f"{key} must be an object")
    _check_state(doc["state"])
    base = doc["base"]
    _hex64(base, "sha256", "base")
    _int(base, "size", "base")
    _int(base, "virtual_size", "base")
    if base.get("format") not in DISK_FORMATS:
        raise _fail("base.format must be one of " + ", ".join(DISK_FORMATS))
    urls = base.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _fail("base.urls must be a list of strings")
    for i, url in enumerate(urls):
        check_text(url, f"base.urls[{i}]", limit=2048)
    for key in ("name", "version"):
        if base.get(key) is not None:
            check_text(base[key], f"base.{key}")
    since = doc.get("since")
    if since is not None:
        if not isinstance(since, dict) or not isinstance(since.get("state_id"), str):
            raise _fail("since must be null or an object with a state_id")
        if not isinstance(since.get("digest"), str):
            raise _fail("since.digest must be a string")
        if FEATURE_INCREMENTAL not in required:
            raise _fail("an incremental bundle must require the 'incremental' feature")
    disks = doc.get("disks")
    if not isinstance(disks, list) or not 1 <= len(disks) <= MAX_DISKS:
        raise _fail(f"disks must be a list of 1 to {MAX_DISKS} entries")
    members = doc["members"]
    expected_members = {LOGBOOK_NAME} | _check_disks(disks, base, since)
    if any(disk_encoding(d) == ENCODING_BLOCKS for d in disks) and FEATURE_BLOCK_LIST not in required:
        raise _fail("a bundle with block-list disks must require the 'block-list' feature")
    if doc.get("memory") is not None:
        if FEATURE_MEMORY not in required:
            raise _fail("a bundle with a memory image must require the 'memory-image' feature")
        expected_members.add(MEMORY_NAME)
    if CHECKS_NAME in members:
        expected_members.add(CHECKS_NAME)
    if set(members) != expected_members:
        raise _fail("members must list exactly " + ", ".join(sorted(expected_members)))
    for name, entry in members.items():
        _check_member(entry, f"members[{name!r}]")
    return doc
