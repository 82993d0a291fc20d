"""Render a :class:`Context` as cloud-init NoCloud data or as CernVM contextualisation.

cloud-config is written as block YAML with double-quoted scalars (a subset every YAML reader, and
the test appliance's line-based reader, understand) without a YAML library. CernVM reads a MIME
multipart user-data: a ``text/ucernvm`` part for the boot loader, a ``text/amiconfig-user-data``
part with the ``[cernvm]`` section, and the cloud-init part. EC2 and OpenStack cap user-data at
16 kB, and CernVM's launcher inherits that limit, so both renderings enforce it.
"""

from __future__ import annotations

import hashlib
import json
import re
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from vmlog.context.model import Context
from vmlog.errors import InvalidInput

USER_DATA_LIMIT = 16 * 1024
CERNVM_ISO_LABEL = "config-2"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


# -- a small YAML writer -----------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)  # JSON strings are valid YAML double-quoted scalars


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_key(str(key))}:")
                lines += _yaml_lines(item, indent + 2)
            elif isinstance(item, dict | list):
                lines.append(f"{pad}{_key(str(key))}: {'{}' if isinstance(item, dict) else '[]'}")
            else:
                lines.append(f"{pad}{_key(str(key))}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                inner = _yaml_lines(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            elif isinstance(item, list):
                lines.append(f"{pad}- {json.dumps(item, ensure_ascii=False)}")  # flow sequence
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


def _cloud_config_data(ctx: Context) -> dict[str, Any]:
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
    if ctx.extra_files:
        data["write_files"] = [
            {"path": f.path, "content": f.content, "permissions": f.permissions} for f in ctx.extra_files
        ]
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
    """(meta-data, user-data) for a NoCloud seed; a raw extra part makes user-data MIME multipart."""
    meta_data = f"instance-id: {_scalar(ctx.effective_instance_id)}\nlocal-hostname: {_scalar(ctx.hostname)}\n"
    user_data = cloud_config(_cloud_config_data(ctx))
    if isinstance(ctx.extra_user_data, str):
        user_data = _multipart(
            [("cloud-config", user_data), (_raw_part_type(ctx.extra_user_data), ctx.extra_user_data)]
        )
    check_user_data_size(user_data)
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
