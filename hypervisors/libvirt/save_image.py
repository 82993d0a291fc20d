"""The header of a libvirt QEMU memory image: the domain definition it embeds, and renaming it.

libvirt (``virDomainSave``) writes a 92-byte header, then ``data_len`` bytes holding the domain
XML (NUL-terminated) and the migration cookie at ``cookie_offset`` (NUL-terminated, zero padded),
then QEMU's migration stream. On restore libvirt refuses a definition whose name or UUID differs
from the embedded one, even through ``virDomainRestoreFlags``' replacement XML. An image that
another vmlog home saved (an imported state) names the sender's VM; :func:`rename` makes it name
the importer's VM instead, leaving everything else to libvirt's ABI check against the new XML.
"""

from __future__ import annotations

import os
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from hypervisors.errors import OperationFailed

MAGIC = b"LibvirtQemudSave"
HEADER = struct.Struct("<16s5I56x")  # magic, version, data_len, was_running, compressed, cookie_offset
MAX_DATA = 16 * 1024 * 1024  # libvirt pads the definition to a few tens of KiB; more is not an image


@dataclass(frozen=True)
class SaveImageHeader:
    version: int
    data_len: int
    cookie_offset: int
    xml: str
    cookie: bytes


def _fail(path: Path, why: str) -> OperationFailed:
    return OperationFailed(
        f"{path} is not a libvirt memory image vmlog can use: {why}",
        fix="restore the state without its memory (the VM cold-boots from the disks)",
        backend="kvm",
    )


def read_header(path: Path) -> SaveImageHeader:
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read(HEADER.size)
        if len(raw) < HEADER.size:
            raise _fail(path, "too short")
        magic, version, data_len, _running, _compressed, cookie_offset = HEADER.unpack(raw)
        if magic != MAGIC:
            raise _fail(path, "no libvirt save header (an unfinished or foreign file)")
        if version != 2 or not 0 < data_len <= MAX_DATA or cookie_offset >= data_len:
            raise _fail(path, f"unexpected header (version {version}, {data_len} bytes of definition)")
        data = fh.read(data_len)
    if len(data) < data_len:
        raise _fail(path, "truncated definition")
    xml_end = data.find(b"\0")
    if xml_end < 0 or (cookie_offset and cookie_offset <= xml_end):
        raise _fail(path, "the embedded definition is not terminated")
    cookie = b""
    if cookie_offset:
        end = data.find(b"\0", cookie_offset)
        cookie = data[cookie_offset : end if end >= 0 else data_len]
    return SaveImageHeader(version, data_len, cookie_offset, data[:xml_end].decode(), cookie)


def _replace_first(xml: str, tag: str, old: str, new: str) -> str:
    pattern = re.compile(rf"<{tag}>\s*{re.escape(old)}\s*</{tag}>")
    if not pattern.search(xml):
        raise ValueError(f"no <{tag}> {old} in the embedded definition")
    return pattern.sub(f"<{tag}>{new}</{tag}>", xml, count=1)


def rename(path: Path, name: str, uuid: str) -> None:
    """Make the image's embedded definition name VM ``name`` with ``uuid`` (in place, header only)."""
    path = Path(path)
    header = read_header(path)
    root = ET.fromstring(header.xml)
    old_name, old_uuid = root.findtext("name"), root.findtext("uuid")
    if not old_name or not old_uuid:
        raise _fail(path, "the embedded definition has no name or UUID")
    try:
        xml = _replace_first(header.xml, "name", old_name, name)
        xml = _replace_first(xml, "uuid", old_uuid, uuid)
    except ValueError as exc:
        raise _fail(path, str(exc)) from exc
    xml_bytes = xml.encode() + b"\0"
    cookie = header.cookie + b"\0" if header.cookie_offset else b""
    if len(xml_bytes) + len(cookie) > header.data_len:
        raise _fail(path, f"the definition for {name!r} does not fit in the image's header")
    cookie_offset = len(xml_bytes) if header.cookie_offset else 0
    data = (xml_bytes + cookie).ljust(header.data_len, b"\0")
    with open(path, "r+b") as fh:
        raw = bytearray(fh.read(HEADER.size))
        struct.pack_into("<I", raw, 16 + 4 * 4, cookie_offset)
        fh.seek(0)
        fh.write(bytes(raw) + data)
        fh.flush()
        os.fsync(fh.fileno())
