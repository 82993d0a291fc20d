"""The image store: immutable base images addressed by the sha256 of their bytes.

Layout under the store root (``paths.home().images``)::

    <sha256>/<name>-<version>.<format>   the image, read-only (0444)
    <sha256>/meta.json                   name, version, format, size, urls, arch, added
    <sha256>/refs/<holder>               one empty file per project/state that uses the image
    <sha256>/converted/<name>-<version>.<fmt>   qemu-img conversions, made once, read-only
    .staging/KIND-PID-TOKEN              entries being assembled, renamed into place whole (or swept once PID is gone)
    .locks/<sha256>.lock                 serialises add/remove/ref changes of one image

An entry appears by renaming a complete staging directory, so a crash never leaves a half-written
image under its digest; ``list()`` ignores everything that is not a complete entry. Every file passes
the image gate (``image_gate.check_entering``) before it becomes an entry: a refused one leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

from vmlog.errors import Busy, IntegrityError, InvalidInput, NotFound
from vmlog.fsutil import atomic_write_text, fsync_dir
from vmlog.store._files import file_lock
from vmlog.store.conversion import convert_once
from vmlog.store.hashing import copy_hashed, hash_file
from vmlog.store.image_gate import check_entering
from vmlog.store.model import StoredImage

MIN_PREFIX = 8
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def _check_part(what: str, value: str) -> str:
    """Names end up in file names: keep them to a safe alphabet (no slashes, no leading dot)."""
    if not _SAFE_PART.match(value or ""):
        raise InvalidInput(
            f"invalid image {what} {value!r}",
            fix="use letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit",
        )
    return value


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version_key(version: str) -> list[tuple[int, int | str]]:
    """Natural ordering (4.10 after 4.9) used when a ref names an image without a version."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_]", version)]


class ImageStore:
    """Adds, finds, verifies, reference-counts and converts base images under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.sweep_staging()  # like a journal rolled back on open: a killed writer's work goes first

    # -- layout -------------------------------------------------------------------------------

    def _entry(self, sha256: str) -> Path:
        return self.root / sha256

    def _lock(self, sha256: str):
        return file_lock(self.root / ".locks" / f"{sha256}.lock")

    def _staging(self) -> Path:
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def staging_dir(self, kind: str) -> Path:
        """A new directory ``.staging/KIND-PID-TOKEN`` for work of this process (an add, an unpacked box) that
        is renamed into the store whole or removed; once the process is gone, :meth:`sweep_staging` removes it."""
        path = self._staging() / f"{kind}-{os.getpid()}-{secrets.token_hex(6)}"
        path.mkdir()
        return path

    def sweep_staging(self) -> list[str]:
        """Remove the staging directories of processes that are gone (killed mid-add or mid-unpack); their names.

        Entries of live processes, and entries not named by :meth:`staging_dir`, are left alone (``vml doctor``
        removes those once they are old)."""
        staging = self.root / ".staging"
        removed = []
        with contextlib.suppress(OSError):
            for entry in staging.iterdir() if staging.is_dir() else ():
                parts = entry.name.split("-")
                if len(parts) == 3 and parts[1].isdigit() and not _process_alive(int(parts[1])):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        return removed

    def _ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    # -- reading ------------------------------------------------------------------------------

    def _load(self, entry: Path) -> StoredImage | None:
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
        path = entry / meta["file"]
        return StoredImage(
            sha256=entry.name,
            name=meta["name"],
            version=meta["version"],
            format=meta["format"],
            size=int(meta["size"]),
            path=path,
            urls=tuple(meta.get("urls", ())),
            added=meta.get("added", ""),
            arch=meta.get("arch", "x86_64"),
        )

    def find(self, sha256: str) -> StoredImage | None:
        """The image with exactly this digest, or None."""
        sha256 = sha256.lower()
        if not _HEX64.match(sha256):
            return None
        return self._load(self._entry(sha256))

    def list(self) -> list[StoredImage]:
        if not self.root.is_dir():
            return []
        images = []
        for entry in sorted(self.root.iterdir()):
            if _HEX64.match(entry.name):
                image = self._load(entry)
                if image is not None:
                    images.append(image)
        return sorted(images, key=lambda i: (i.name, _version_key(i.version), i.format))

    def get(self, ref: str) -> StoredImage:
        """Resolve a sha256, a unique sha256 prefix (>= 8 hex digits), or ``name[:version]``.

        Without a version the highest version wins; two formats of the same name and version are
        ambiguous and must be named by digest.
        """
        ref = ref.strip()
        lowered = ref.lower().removeprefix("sha256:")
        if _HEX.match(lowered) and len(lowered) >= MIN_PREFIX:
            matches = [i for i in self.list() if i.sha256.startswith(lowered)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidInput(
                    f"image prefix {ref!r} matches {len(matches)} images",
                    fix="give more digits of the sha256",
                )
        name, _, version = ref.partition(":")
        candidates = [i for i in self.list() if i.name == name and (not version or i.version == version)]
        if not candidates:
            raise NotFound(f"no image {ref!r} in the store", fix="see `vml appliance list` or pull it")
        if not version:
            best = max(_version_key(i.version) for i in candidates)
            candidates = [i for i in candidates if _version_key(i.version) == best]
        if len(candidates) > 1:
            choices = ", ".join(f"{i.sha256[:12]} ({i.format})" for i in candidates)
            raise InvalidInput(f"image {ref!r} is ambiguous: {choices}", fix="name it by its sha256 prefix")
        return candidates[0]

    # -- adding -------------------------------------------------------------------------------

    def add_file(
        self,
        src: Path,
        *,
        name: str,
        version: str,
        format: str,
        urls: tuple[str, ...] | list[str] = (),
        arch: str = "x86_64",
        expected_sha256: str | None = None,
        move: bool = False,
    ) -> StoredImage:
        """Copy (or move) ``src`` into the store and return its entry; idempotent per digest.

        The digest is computed while the bytes are copied into a staging file inside the store, so
        what is hashed is what is stored. A mismatch with ``expected_sha256`` raises
        ``IntegrityError`` and leaves the store untouched. With ``move`` a file on the same
        filesystem is hashed in place and renamed (no copy).
        """
        src = Path(src)
        _check_part("name", name)
        _check_part("version", version)
        _check_part("format", format)
        _check_part("arch", arch)
        if not src.is_file():
            raise NotFound(f"image file {src} does not exist")
        self._ensure()
        stage = self.staging_dir("add")
        file_name = f"{name}-{version}.{format}"
        staged = stage / file_name
        try:
            sha256, size = self._stage_bytes(src, staged, move=move)
            if expected_sha256 is not None and sha256 != expected_sha256.lower():
                raise IntegrityError(
                    f"{src.name}: sha256 is {sha256}, expected {expected_sha256.lower()}",
                    fix="the file is corrupt or not the image you meant; download it again",
                )
            check_entering(staged, format, what=f"{name}-{version} ({src.name})")
            os.chmod(staged, 0o444)
            self._write_meta(stage, name, version, format, size, file_name, urls, arch, sha256)
            with self._lock(sha256):
                existing = self.find(sha256)
                if existing is not None:
                    self._merge_urls(existing, urls)
                    if move:
                        src.unlink(missing_ok=True)
                    return self.find(sha256) or existing
                entry = self._entry(sha256)
                if entry.exists():  # an incomplete leftover (no meta.json): replace it
                    self._discard(entry)
                os.rename(stage, entry)
                fsync_dir(self.root)
            if move:
                src.unlink(missing_ok=True)
            image = self.find(sha256)
            assert image is not None
            return image
        finally:
            if stage.exists():
                self._discard(stage)

    def adopt(
        self,
        src: Path,
        *,
        sha256: str,
        name: str,
        version: str,
        format: str,
        urls: tuple[str, ...] | list[str] = (),
        arch: str = "x86_64",
    ) -> StoredImage:
        """Move in a file whose sha256 the caller computed from the very bytes it wrote.

        The downloader hashes while it streams into its partial file; hashing the file a second
        time would double the cost of every pull. ``src`` must be on the store's filesystem (it is
        renamed, not copied); anything else goes through :meth:`add_file`. A file the image gate
        refuses is deleted (it is the caller's verified download, of no further use).
        """
        src = Path(src)
        sha256 = sha256.lower()
        if not _HEX64.match(sha256):
            raise InvalidInput(f"not a sha256 digest: {sha256!r}")
        for what, value in (("name", name), ("version", version), ("format", format), ("arch", arch)):
            _check_part(what, value)
        self._ensure()
        try:
            check_entering(src, format, what=f"{name}-{version}")
        except InvalidInput:
            src.unlink(missing_ok=True)
            raise
        existing = self.find(sha256)
        if existing is not None:
            with self._lock(sha256):
                self._merge_urls(existing, urls)
            src.unlink(missing_ok=True)
            return self.find(sha256) or existing
        stage = self.staging_dir("adopt")
        file_name = f"{name}-{version}.{format}"
        try:
            try:
                os.link(src, stage / file_name)
            except OSError:
                return self.add_file(
                    src,
                    name=name,
                    version=version,
                    format=format,
                    urls=urls,
                    arch=arch,
                    expected_sha256=sha256,
                    move=True,
                )
            os.chmod(stage / file_name, 0o444)
            self._write_meta(
                stage, name, version, format, (stage / file_name).stat().st_size, file_name, urls, arch, sha256
            )
            with self._lock(sha256):
                existing = self.find(sha256)
                if existing is None:
                    entry = self._entry(sha256)
                    if entry.exists():
                        self._discard(entry)
                    os.rename(stage, entry)
                    fsync_dir(self.root)
                else:
                    self._merge_urls(existing, urls)
            src.unlink(missing_ok=True)
            image = self.find(sha256)
            assert image is not None
            return image
        finally:
            if stage.exists():
                self._discard(stage)

    def _write_meta(self, stage: Path, name, version, format, size, file_name, urls, arch, sha256) -> None:
        meta = {
            "name": name,
            "version": version,
            "format": format,
            "size": size,
            "file": file_name,
            "urls": list(dict.fromkeys(urls)),
            "arch": arch,
            "added": _now(),
            "sha256": sha256,
        }
        atomic_write_text(stage / "meta.json", json.dumps(meta, indent=2) + "\n")
        (stage / "refs").mkdir()
        fsync_dir(stage)

    def _stage_bytes(self, src: Path, staged: Path, *, move: bool) -> tuple[str, int]:
        if move:
            try:
                os.link(src, staged)  # same filesystem: hash the linked bytes, no copy
            except OSError:
                pass
            else:
                return hash_file(staged), staged.stat().st_size
        return copy_hashed(src, staged)

    def _merge_urls(self, image: StoredImage, urls) -> None:
        new = [u for u in urls if u not in image.urls]
        if not new:
            return
        meta_path = self._entry(image.sha256) / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["urls"] = list(dict.fromkeys([*meta.get("urls", []), *new]))
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")

    # -- checking -----------------------------------------------------------------------------

    def verify(self, sha256: str) -> None:
        """Re-hash the stored bytes; raise ``IntegrityError`` if they no longer match their name."""
        image = self._require(sha256)
        actual = hash_file(image.path)
        if actual != image.sha256:
            raise IntegrityError(
                f"image {image.name}-{image.version} is corrupt: sha256 {actual}, expected {image.sha256}",
                fix=f"remove it (`vml appliance rm {image.sha256[:12]}`) and pull it again",
            )
        size = image.path.stat().st_size
        if size != image.size:
            raise IntegrityError(
                f"image {image.name}-{image.version} has {size} bytes, expected {image.size}",
                fix=f"remove it (`vml appliance rm {image.sha256[:12]}`) and pull it again",
            )

    def _require(self, sha256: str) -> StoredImage:
        image = self.find(sha256)
        if image is None:
            raise NotFound(f"no image with sha256 {sha256} in the store", fix="see `vml appliance list`")
        return image

    # -- references ---------------------------------------------------------------------------

    @staticmethod
    def _ref_file_name(holder: str) -> str:
        if not holder:
            raise InvalidInput("a reference needs a holder name")
        return urllib.parse.quote(holder, safe="")

    def add_ref(self, sha256: str, holder: str) -> None:
        """Record that ``holder`` (a project or state id) uses the image, so it cannot be removed."""
        name = self._ref_file_name(holder)
        with self._lock(sha256):
            image = self._require(sha256)
            refs = self._entry(image.sha256) / "refs"
            refs.mkdir(exist_ok=True)
            (refs / name).touch()
            fsync_dir(refs)

    def remove_ref(self, sha256: str, holder: str) -> None:
        name = self._ref_file_name(holder)
        with self._lock(sha256):
            refs = self._entry(sha256.lower()) / "refs"
            (refs / name).unlink(missing_ok=True)
            if refs.is_dir():
                fsync_dir(refs)

    def refs(self, sha256: str) -> list[str]:
        refs = self._entry(sha256.lower()) / "refs"
        if not refs.is_dir():
            return []
        return sorted(urllib.parse.unquote(p.name) for p in refs.iterdir() if not p.name.startswith("."))

    # -- removing -----------------------------------------------------------------------------

    def remove(self, ref: str) -> None:
        """Delete an image and its conversions; refused while any holder references it."""
        image = self.get(ref)
        with self._lock(image.sha256):
            holders = self.refs(image.sha256)
            if holders:
                raise Busy(
                    f"image {image.name}-{image.version} ({image.sha256[:12]}) is in use by: " + ", ".join(holders),
                    fix="delete those projects/states first",
                )
            entry = self._entry(image.sha256)
            if entry.exists():
                self._discard(entry)
                fsync_dir(self.root)

    def _discard(self, path: Path) -> None:
        """Rename out of the way first (atomic), then delete; read-only files are fine on POSIX."""
        trash = self._staging() / f"trash-{os.getpid()}-{secrets.token_hex(6)}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- conversion ---------------------------------------------------------------------------

    def converted(self, sha256: str, fmt: str) -> Path:
        """The image in disk format ``fmt``, converted once with qemu-img and cached read-only."""
        image = self._require(sha256)
        target_dir = self._entry(image.sha256) / "converted"
        return convert_once(image, fmt, target_dir, self.root / ".locks" / f"{image.sha256}.convert-{fmt}.lock")


__all__ = ["ImageStore", "StoredImage"]
