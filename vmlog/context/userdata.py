"""Render a :class:`Context` as cloud-init NoCloud data or as CernVM contextualisation.

cloud-config is written as block YAML with double-quoted scalars (a subset every YAML reader, and
the test appliance's line-based reader, understand) without a YAML library. Characters YAML does not
allow raw in a stream (DEL, C1 controls, ...) are escaped, or PyYAML refuses the whole document and
cloud-init applies nothing; keys YAML 1.1 reads as booleans or null (``on``, ``no``) are quoted.
CernVM reads a MIME multipart user-data: a ``text/ucernvm`` part for the boot loader, a
``text/amiconfig-user-data`` part with the ``[cernvm]`` section, and the cloud-init part. EC2 and
OpenStack cap user-data at 16 kB and CernVM's launcher inherits that limit, so the CernVM rendering
enforces it; a NoCloud seed is a local disc without that limit. A generic guest has no amiconfig, so
NoCloud user-data carries the CernVM-FS settings as ``/etc/cvmfs/default.local``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from vmlog.context.model import Context
from vmlog.errors import InvalidInput

USER_DATA_LIMIT = 16 * 1024
CERNVM_ISO_LABEL = "config-2"
CVMFS_CONFIG_PATH = "/etc/cvmfs/default.local"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_YAML11_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
# what a YAML stream may hold raw (YAML 1.1 printable set, less the line breaks NEL, LS, PS and the BOM)
_NOT_RAW_IN_YAML = re.compile(
    r"[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


# -- a small YAML writer -----------------------------------------------------------------------


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar: JSON's string syntax, with what YAML forbids raw escaped."""
    return _NOT_RAW_IN_YAML.sub(_escape, json.dumps(text, ensure_ascii=False))


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, int | float):
        return json.dumps(value)
    return _quoted(str(value))


def _key(key: str) -> str:
    plain = _PLAIN_KEY.match(key) and key.lower() not in _YAML11_WORDS
    return key if plain else _quoted(key)


def _empty(value: dict | list) -> str:
    return "{}" if isinstance(value, dict) else "[]"


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_key(str(key))}:")
                lines += _yaml_lines(item, indent + 2)
            elif isinstance(item, dict | list):
                lines.append(f"{pad}{_key(str(key))}: {_empty(item)}")
            else:
                lines.append(f"{pad}{_key(str(key))}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                inner = _yaml_lines(item, indent + 2)  # "- key: v" / "- - v": the first line shares the dash
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            elif isinstance(item, dict | list):
                lines.append(f"{pad}- {_empty(item)}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def cloud_config(data: dict[str, Any]) -> str:
    return "#cloud-config\n" + "\n".join(_yaml_lines(data, 0)) + "\n"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """cloud-init style merge: mappings merge, lists append, scalars from ``extra`` win."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + value
        else:
            out[key] = value
    return out


# -- size limit --------------------------------------------------------------------------------


def check_user_data_size(user_data: str | bytes, *, limit: int = USER_DATA_LIMIT) -> None:
    size = len(user_data.encode() if isinstance(user_data, str) else user_data)
    if size > limit:
        raise InvalidInput(
            f"user-data is {size} bytes, {size - limit} bytes over the {limit}-byte limit",
            fix="move large files out of the context (e.g. fetch them at boot or put them on a shared folder)",
        )


# -- NoCloud -----------------------------------------------------------------------------------


def _shell_word(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def cvmfs_default_local(ctx: Context) -> str | None:
    """``/etc/cvmfs/default.local`` for the context's CernVM-FS settings (None without any)."""
    lines = []
    if ctx.cvmfs_repositories:
        lines.append("CVMFS_REPOSITORIES=" + ",".join(ctx.cvmfs_repositories))
    if ctx.cvmfs_http_proxy:
        lines.append("CVMFS_HTTP_PROXY=" + _shell_word(ctx.cvmfs_http_proxy))
    return "".join(f"{line}\n" for line in lines) or None


def _cloud_config_data(ctx: Context, *, cvmfs_file: bool = False) -> dict[str, Any]:
    user: dict[str, Any] = {
        "name": ctx.user,
        "shell": "/bin/bash",
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "lock_passwd": True,
    }
    if ctx.ssh_public_key:
        user["ssh_authorized_keys"] = [ctx.ssh_public_key.strip()]
    data: dict[str, Any] = {
        "hostname": ctx.hostname,
        "preserve_hostname": False,
        "users": ["default", user],
    }
    files = [{"path": f.path, "content": f.content, "permissions": f.permissions} for f in ctx.extra_files]
    cvmfs = cvmfs_default_local(ctx) if cvmfs_file else None
    if cvmfs is not None:
        files.append({"path": CVMFS_CONFIG_PATH, "content": cvmfs, "permissions": "0644"})
    if files:
        data["write_files"] = files
    if isinstance(ctx.extra_user_data, dict):
        data = merge(data, ctx.extra_user_data)
    return data


def _raw_part_type(text: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if first.startswith("#!"):
        return "x-shellscript"
    if first.startswith("#cloud-config"):
        return "cloud-config"
    if first.startswith("#cloud-boothook"):
        return "cloud-boothook"
    raise InvalidInput(
        "extra user-data must start with #cloud-config, #! or #cloud-boothook",
        fix="or give it as a mapping (extra_user_data = {...}) to merge it into vmlog's cloud-config",
    )


def _multipart(parts: list[tuple[str, str]]) -> str:
    # a boundary derived from the content keeps the same context rendering to the same bytes
    digest = hashlib.sha256("\0".join(f"{t}\0{x}" for t, x in parts).encode()).hexdigest()[:32]
    message = MIMEMultipart(boundary=f"==vmlog-{digest}==")
    for subtype, text in parts:
        # plain ASCII stays readable (7bit); anything else is base64 so no byte is mangled
        part = MIMEText(text, subtype, "us-ascii" if text.isascii() else "utf-8")
        message.attach(part)
    return message.as_string()


def render_nocloud(ctx: Context) -> tuple[str, str]:
    """(meta-data, user-data) for a NoCloud seed; a raw extra part makes user-data MIME multipart.

    No size cap: the seed is a local disc, and cloud-init's NoCloud reader has none.
    """
    meta_data = f"instance-id: {_scalar(ctx.effective_instance_id)}\nlocal-hostname: {_scalar(ctx.hostname)}\n"
    user_data = cloud_config(_cloud_config_data(ctx, cvmfs_file=True))
    if isinstance(ctx.extra_user_data, str):
        user_data = _multipart(
            [("cloud-config", user_data), (_raw_part_type(ctx.extra_user_data), ctx.extra_user_data)]
        )
    return meta_data, user_data


# -- CernVM ------------------------------------------------------------------------------------


def _ucernvm_section(ctx: Context) -> str:
    lines = ["[ucernvm-begin]", "resize_rootfs=on"]
    if ctx.cvmfs_http_proxy:
        lines.append(f"cvmfs_http_proxy={ctx.cvmfs_http_proxy}")
    lines.append("[ucernvm-end]")
    return "\n".join(lines) + "\n"


def _amiconfig_section(ctx: Context) -> str:
    lines = ["[amiconfig]", "plugins=cernvm", "[cernvm]"]
    if ctx.cvmfs_repositories:
        lines.append("repositories=" + ",".join(ctx.cvmfs_repositories))
    if ctx.cvmfs_http_proxy:
        lines.append(f"proxy={ctx.cvmfs_http_proxy}")
    lines.append(f"hostname={ctx.hostname}")
    return "\n".join(lines) + "\n"


def render_cernvm(ctx: Context) -> str:
    """CernVM user-data: ucernvm boot-loader section, amiconfig ``[cernvm]`` section, cloud-init part."""
    parts = [
        ("ucernvm", _ucernvm_section(ctx)),
        ("amiconfig-user-data", _amiconfig_section(ctx)),
        ("cloud-config", cloud_config(_cloud_config_data(ctx))),
    ]
    if isinstance(ctx.extra_user_data, str):
        parts.append((_raw_part_type(ctx.extra_user_data), ctx.extra_user_data))
    user_data = _multipart(parts)
    check_user_data_size(user_data)
    return user_data


def cernvm_iso_layout(ctx: Context, *, user_data: str | None = None) -> dict[str, bytes]:
    """The files of the ``config-2`` ISO CernVM's launcher attaches: EC2 and OpenStack layouts.

    CernVM reads user-data from whichever metadata layout it finds; both are written so the same
    ISO works whatever the image's cloud detection picks.
    """
    user_data = user_data if user_data is not None else render_cernvm(ctx)
    check_user_data_size(user_data)
    ud = user_data.encode()
    meta = {
        "uuid": ctx.effective_instance_id,
        "instance-id": ctx.effective_instance_id,
        "hostname": ctx.hostname,
        "local-hostname": ctx.hostname,
        "name": ctx.hostname,
    }
    meta_json = (json.dumps(meta, indent=2) + "\n").encode()
    return {
        "ec2/latest/user-data": ud,
        "ec2/latest/meta-data.json": meta_json,
        "openstack/latest/user_data": ud,
        "openstack/latest/meta_data.json": meta_json,
    }
