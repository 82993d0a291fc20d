"""Conversions of a stored image to another disk format: made once with qemu-img, kept read-only.

The original passes the image gate again (a store image must stand alone), qemu-img reads it only
through ``--image-opts`` (this file, no backing), and the result is gated too before it is kept.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from hypervisors import qemu_img
from hypervisors.errors import HypervisorError
from vmlog.errors import InvalidInput, VmlogError
from vmlog.fsutil import fsync_dir
from vmlog.store._files import file_lock
from vmlog.store.image_gate import GatedImage, check_image
from vmlog.store.model import StoredImage

CONVERTIBLE_TARGETS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc")


def convert_once(image: StoredImage, fmt: str, target_dir: Path, lock_path: Path) -> Path:
    """``image`` in disk format ``fmt``: the image itself if it already is, else its cached conversion.

    ``target_dir`` holds the conversions of this image; ``lock_path`` serialises making this one.
    """
    if fmt not in CONVERTIBLE_TARGETS:
        raise InvalidInput(f"cannot convert to {fmt!r}", fix=f"use one of: {', '.join(CONVERTIBLE_TARGETS)}")
    src_fmt = image.qemu_format
    if fmt == image.format or (fmt == "raw" and src_fmt == "raw"):
        return image.path
    if image.format == "iso":
        raise InvalidInput(
            f"{image.name}-{image.version} is an ISO; it boots as a CD-ROM and is not converted",
            fix="attach it as a cdrom instead of a disk",
        )
    target = target_dir / f"{image.name}-{image.version}.{fmt}"
    if target.exists():
        return target
    with file_lock(lock_path):
        if target.exists():
            return target
        check_standalone(image)
        target_dir.mkdir(exist_ok=True)
        tmp = target_dir / f".{target.name}.tmp-{secrets.token_hex(4)}"
        try:
            options = {"cluster_size": "65536"} if fmt == "qcow2" else None
            qemu_img.convert(image.path, tmp, src_format=src_fmt, dest_format=fmt, options=options, isolated=True)
            check_image(tmp, fmt, what=f"the {fmt} conversion of {image.name}-{image.version}")
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.rename(tmp, target)
            fsync_dir(target_dir)
        except HypervisorError as exc:
            raise VmlogError(
                f"could not convert {image.name}-{image.version} to {fmt}: {exc.message}",
                fix="check free disk space and that qemu-utils is installed",
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
    return target


def check_standalone(image: StoredImage) -> GatedImage:
    """Refuse a stored image that is not a standalone image of its format (see ``image_gate``)."""
    return check_image(image.path, image.format, what=f"{image.name}-{image.version}")
