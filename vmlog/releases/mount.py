"""The filesystem process: ``python -m vmlog.releases.mount SPEC.json`` serves one release until unmounted.

It runs in the foreground of its own session (``mount_release`` starts it), logs to the release's
log file, and ends when ``fusermount3 -u`` unmounts it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from vmlog.fsutil import read_json
from vmlog.releases.filesystem import ReleaseFilesystem, require_fuse
from vmlog.releases.model import Release
from vmlog.releases.sources import source_from_config


def serve(spec: dict) -> None:
    fuse = require_fuse()
    logging.basicConfig(
        filename=spec["log_file"],
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )
    log = logging.getLogger("vmlog.releases")
    release = Release.from_dict(spec["release"])
    source = source_from_config(spec["source"])
    log.info(
        "mounting %s revision %s (%s) from %s at %s",
        release.name,
        release.revision,
        release.pin,
        release.source_url,
        spec["mountpoint"],
    )
    tree = source.open_tree(release, Path(spec["cache_dir"]), int(spec["cache_limit"]))
    options = {"foreground": True, "ro": True, "fsname": f"vmlog-release:{release.name}", "subtype": "vmlog"}
    if os.geteuid() == 0:
        options["allow_other"] = True  # the hypervisor's file server (virtiofsd) reads it as another user
    try:
        fuse.FUSE(ReleaseFilesystem(tree), spec["mountpoint"], **options)
    finally:
        log.info("unmounted %s", release.name)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m vmlog.releases.mount SPEC.json\n")
        return 2
    serve(read_json(Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
