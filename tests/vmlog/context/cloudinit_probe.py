"""Read a seed directory with the installed cloud-init's own code and print what it made of it as JSON.

Run with the system interpreter that has Debian's ``cloud-init`` package (``/usr/bin/python3``),
never imported by the tests: ``cloudinit_probe.py nocloud|configdrive DIR``. It reports the
datasource's meta-data and raw user-data, the parts the user-data processor produced, the
cloud-config parts merged the way cloud-init merges them, the schema problems of that merged
config, and every warning cloud-init logged while doing so (an unloadable YAML part is only a
warning in cloud-init, and the part is then silently empty).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from cloudinit import handlers, helpers, util
from cloudinit.config.schema import SchemaValidationError, get_schema, validate_cloudconfig_schema
from cloudinit.handlers.cloud_config import CloudConfigPartHandler
from cloudinit.sources import DataSourceConfigDrive, DataSourceNoCloud
from cloudinit.user_data import UserDataProcessor


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _Instance:
    """What cloud-init's paths need of a datasource to name the instance directory."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id

    def get_instance_id(self) -> str:
        return self.instance_id


def _parts_and_config(paths: helpers.Paths, raw: bytes | str) -> tuple[list[dict], dict | None]:
    message = UserDataProcessor(paths).process(raw)
    parts = []
    handler = CloudConfigPartHandler(paths)
    handler.handle_part(None, handlers.CONTENT_START, None, None, None, None)
    merged = None
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        payload = util.fully_decoded_payload(part)
        parts.append({"type": ctype, "payload": payload})
        if ctype == "text/cloud-config":
            handler.handle_part(None, ctype, f"part-{index:03d}", payload, None, dict(part.items()))
            merged = copy.deepcopy(handler.cloud_buf)
    return parts, merged


def _schema_problems(config: dict | None) -> list[str]:
    if config is None:
        return []
    try:
        validate_cloudconfig_schema(config, get_schema(), strict=True, log_details=False)
    except SchemaValidationError as exc:
        return [str(exc)]
    return []


def _nocloud(seed: Path, work: Path) -> dict:
    shutil.copytree(seed, work / "seed" / "nocloud")
    paths = helpers.Paths({"cloud_dir": str(work), "run_dir": str(work / "run")})
    sys_cfg = {"datasource": {"NoCloud": {"fs_label": None}}}  # the seed directory only: no blkid scan of the host
    ds = DataSourceNoCloud.DataSourceNoCloud(sys_cfg, None, paths)
    found = bool(ds._get_data())
    raw = ds.userdata_raw if found else b""
    return {"found": found, "metadata": ds.metadata, "userdata_raw": _text(raw), "paths": paths}


def _configdrive(seed: Path, work: Path) -> dict:
    results = DataSourceConfigDrive.read_config_drive(str(seed))
    paths = helpers.Paths({"cloud_dir": str(work), "run_dir": str(work / "run")})
    return {
        "found": True,
        "metadata": results.get("metadata"),
        "ec2_metadata": results.get("ec2-metadata"),
        "userdata_raw": _text(results.get("userdata") or b""),
        "paths": paths,
    }


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


def main() -> None:
    kind, seed = sys.argv[1], Path(sys.argv[2])
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = _nocloud(seed, work) if kind == "nocloud" else _configdrive(seed, work)
        paths = report.pop("paths")
        paths.datasource = _Instance(str((report["metadata"] or {}).get("instance-id", "none")))
        parts, merged = _parts_and_config(paths, report["userdata_raw"].encode("utf-8", "surrogateescape"))
    report.update(parts=parts, cloud_config=merged, schema_problems=_schema_problems(merged))
    report["warnings"] = collect.messages
    json.dump(report, sys.stdout, default=str)


if __name__ == "__main__":
    main()
