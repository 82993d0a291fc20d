"""A CernVM-FS repository served over HTTP as a release source.

Opening the repository walks the trust chain (master key -> whitelist -> certificate -> manifest),
then reads catalogs and file objects by content hash: each object is fetched once, its hash
checked against its name, decompressed, and kept in the persistent cache, so a pinned release can
later be mounted and read without the server.
"""

from __future__ import annotations

import logging
import sqlite3
import stat
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from vmlog.releases import signed_letter
from vmlog.releases.content_hash import SUFFIX_CATALOG, ContentHash, new_hasher
from vmlog.releases.cvmfs_catalog import (
    FLAG_CHUNKED,
    FLAG_EXTERNAL,
    FLAG_LINK,
    FLAG_SPECIAL,
    Catalog,
    CatalogRow,
)
from vmlog.releases.errors import (
    BadCatalog,
    DigestMismatch,
    ReleaseNotFound,
    SignatureError,
    SourceUnreachable,
)
from vmlog.releases.http_fetch import HttpFetcher
from vmlog.releases.model import SPECIAL_KINDS, Chunk, Entry, Release, ReleaseSource, ReleaseTree, walk_pattern
from vmlog.releases.object_cache import DEFAULT_LIMIT, ObjectCache

log = logging.getLogger("vmlog.releases")

MAX_LETTER = 1 << 20
MAX_CATALOG = 1 << 32
MAX_OBJECT = 1 << 36


def inflate(data: bytes, limit: int, what: str) -> bytes:
    """zlib-decompress ``data`` but refuse more than ``limit`` bytes of output (hostile input)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise DigestMismatch(
            f"{what} is not valid zlib data: {exc}", fix="the object on the server is corrupt"
        ) from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise BadCatalog(f"{what} decompresses to more than {limit} bytes; refused")
    return out


class CvmfsObjects:
    """Fetch-verify-cache for content-addressed objects of one repository."""

    def __init__(self, fetcher: HttpFetcher, cache: ObjectCache) -> None:
        self.fetcher = fetcher
        self.cache = cache

    def get(self, content: ContentHash, *, compressed: bool = True, limit: int = MAX_OBJECT) -> Path:
        """The plain content of ``content`` as a cached file; ``DigestMismatch`` if the server lies."""
        key = content.cache_key
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        data = self.fetcher.get(content.object_path, max_bytes=limit)
        hasher = new_hasher(content.algorithm)
        hasher.update(data)
        if hasher.digest() != content.digest:
            log.error("digest mismatch for %s: got %s", content.object_path, hasher.hexdigest())
            raise DigestMismatch(
                f"object {content.object_path} does not match its content hash (got {hasher.hexdigest()})",
                fix="the server or a proxy serves a modified object; it was not used",
            )
        plain = inflate(data, limit, f"object {content.object_path}") if compressed else data
        return self.cache.put(key, plain)


@dataclass(frozen=True)
class VerifiedRepository:
    """What a verified manifest tells: the current root catalog, revision, and the signed tag list."""

    manifest: signed_letter.Manifest
    tags: list[tuple[str, str, int, int]]  # (name, root catalog hash, revision, timestamp)

    def tag_for(self, revision: int) -> str:
        names = [name for name, _, rev, _ in self.tags if rev == revision]
        return names[0] if names else ""


class CvmfsTree(ReleaseTree):
    """One release directory of a repository, pinned to a root catalog; nested catalogs load lazily."""

    def __init__(self, objects: CvmfsObjects, root_catalog: ContentHash, release_path: str) -> None:
        self.objects = objects
        self.prefix = "/" + release_path.strip("/") if release_path.strip("/") else ""
        self._lock = threading.Lock()
        self._catalogs: dict[str, Catalog] = {}
        self.root = self._load("", root_catalog)

    def _load(self, mountpoint: str, content: ContentHash) -> Catalog:
        with self._lock:
            if mountpoint in self._catalogs:
                return self._catalogs[mountpoint]
            path = self.objects.get(content.with_suffix(SUFFIX_CATALOG), limit=MAX_CATALOG)
            self.objects.cache.pin(content.with_suffix(SUFFIX_CATALOG).cache_key)
            catalog = Catalog(path, mountpoint)
            self._catalogs[mountpoint] = catalog
            log.info("loaded catalog %s for %s", content.hex, mountpoint or "/")
            return catalog

    def catalog_for(self, full_path: str) -> Catalog:
        catalog = self.root
        while True:
            nested = catalog.nested_for(full_path)
            if nested is None:
                return catalog
            catalog = self._load(*nested)

    def _full(self, path: str) -> str:
        path = path.rstrip("/")
        return self.prefix + path if path else self.prefix

    def _entry(self, catalog: Catalog, full_path: str, row: CatalogRow) -> Entry:
        name = full_path.rsplit("/", 1)[-1]
        when = {"mtime": row.mtime, "mtime_ns": row.mtime_ns}
        if row.is_dir:
            return Entry(name, "dir", row.mode, 4096, **when)
        if row.flags & FLAG_LINK:  # cvmfs_server flags links as FILE|LINK
            return Entry(name, "link", 0o777, len(row.symlink), target=row.symlink, **when)
        if row.flags & FLAG_SPECIAL:  # FILE|SPECIAL: the type is in the mode; a device's number in size
            kind = SPECIAL_KINDS.get(stat.S_IFMT(row.mode))
            if kind is None:
                raise BadCatalog(f"{full_path} is a special file of unknown type {oct(row.mode)}")
            devices = ("chardev", "blockdev")
            return Entry(name, kind, row.mode, 0, rdev=row.size if kind in devices else 0, **when)  # type: ignore[arg-type]
        if row.flags & FLAG_EXTERNAL:  # the data lives outside the object store: listed, not readable
            return Entry(name, "file", row.mode, row.size, external=True, **when)
        if row.flags & FLAG_CHUNKED:
            chunks = tuple(
                Chunk(o, s, self._chunk_key(h, row.compressed)) for o, s, h in catalog.chunks(full_path, row.flags)
            )
        elif row.size and row.hash is not None:
            chunks = (Chunk(0, row.size, self._chunk_key(row.hash, row.compressed)),)
        else:
            chunks = ()
        return Entry(name, "file", row.mode, row.size, chunks=chunks, **when)

    @staticmethod
    def _chunk_key(content: ContentHash, compressed: bool) -> str:
        return ("z:" if compressed else "u:") + content.hex + content.suffix

    def lookup(self, path: str) -> Entry | None:
        full = self._full(path)
        catalog = self.catalog_for(full)
        row = catalog.lookup(full)
        return self._entry(catalog, full, row) if row else None

    def listdir(self, path: str) -> list[Entry]:
        full = self._full(path)
        catalog = self.catalog_for(full)
        row = catalog.lookup(full)
        if row is None:
            raise FileNotFoundError(path)
        if not row.is_dir:
            raise NotADirectoryError(path)
        return [self._entry(catalog, f"{full}/{r.name}", r) for r in catalog.children(full) if r.listed]

    def fetch_chunk(self, chunk: Chunk) -> Path:
        mode, text = chunk.key.split(":", 1)
        suffix = text[-1] if text[-1].isupper() else ""
        content = ContentHash.parse(text[:-1] if suffix else text, suffix)
        return self.objects.get(content, compressed=mode == "z")

    def close(self) -> None:
        for catalog in self._catalogs.values():
            catalog.close()


class CvmfsSource(ReleaseSource):
    """``http://server/cvmfs/<repo>``; trusted through ``master_key_pem`` (the repository's .pub)."""

    kind = "cvmfs"

    def __init__(
        self,
        url: str,
        master_key_pem: str,
        *,
        name: str | None = None,
        pattern: str = "{release}",
        proxy: str | None = None,
    ) -> None:
        repository = url.rstrip("/").rsplit("/", 1)[-1]
        super().__init__(url, name=name or repository, pattern=pattern, proxy=proxy)
        self.repository = repository
        self.master_key_pem = master_key_pem
        self.master_keys = signed_letter.load_master_keys(master_key_pem.encode("ascii"))

    def to_config(self) -> dict:
        return {**super().to_config(), "master_key_pem": self.master_key_pem}

    def _objects(self, cache_dir: Path, limit: int = DEFAULT_LIMIT) -> CvmfsObjects:
        return CvmfsObjects(HttpFetcher(self.url, proxy=self.proxy), ObjectCache(cache_dir, limit))

    def verify(self, cache_dir: Path) -> VerifiedRepository:
        """Fetch and verify manifest, whitelist and certificate; read the signed tag history."""
        objects = self._objects(cache_dir)
        fetcher = objects.fetcher
        whitelist = signed_letter.Whitelist.parse(fetcher.get(".cvmfswhitelist", max_bytes=MAX_LETTER))
        signed_letter.verify_whitelist(whitelist, self.master_keys, self.repository)
        manifest = signed_letter.Manifest.parse(fetcher.get(".cvmfspublished", max_bytes=MAX_LETTER))
        if manifest.certificate is None:
            raise SignatureError("the manifest names no certificate (X line)", fix="re-sign the repository")
        certificate_pem = objects.get(manifest.certificate, limit=MAX_LETTER).read_bytes()
        signed_letter.verify_manifest(manifest, certificate_pem, whitelist)
        if manifest.name and manifest.name != self.repository:
            raise SignatureError(f"the manifest is for repository {manifest.name!r}, not {self.repository!r}")
        tags: list[tuple[str, str, int, int]] = []
        if manifest.history is not None:
            history = objects.get(manifest.history, limit=MAX_CATALOG)
            try:
                db = sqlite3.connect(f"file:{history}?mode=ro&immutable=1", uri=True)
                try:
                    tags = [tuple(r) for r in db.execute("SELECT name, hash, revision, timestamp FROM tags")]
                finally:
                    db.close()
            except sqlite3.DatabaseError as exc:
                log.warning("cannot read the tag history: %s", exc)
        return VerifiedRepository(manifest, tags)

    def _releases_at(self, objects: CvmfsObjects, root: ContentHash, revision: int, tag: str, ts: int) -> list[Release]:
        tree = CvmfsTree(objects, root, "")
        try:
            found = walk_pattern(self.pattern, tree.listdir)
        finally:
            tree.close()
        return [
            Release(
                name=r, revision=revision, tag=tag, source_url=self.url, path=p, pin=root.hex, series=s, timestamp=ts
            )
            for p, s, r in found
        ]

    def list_releases(self, cache_dir: Path) -> list[Release]:
        repo = self.verify(cache_dir)
        m = repo.manifest
        return self._releases_at(
            self._objects(cache_dir), m.root_catalog, m.revision, repo.tag_for(m.revision), m.timestamp
        )

    def resolve(self, name: str, cache_dir: Path, *, revision: int | None = None, pin: str | None = None) -> Release:
        objects = self._objects(cache_dir)
        try:
            repo = self.verify(cache_dir)
        except SourceUnreachable:
            if pin is None or revision is None:
                raise
            root = ContentHash.parse(pin, SUFFIX_CATALOG)
            if root.cache_key not in objects.cache:
                raise
            log.warning("server unreachable; using cached revision %s of %s", revision, self.repository)
            return self._pick(self._releases_at(objects, root, revision, "", 0), name)
        m = repo.manifest
        if revision is None or revision == m.revision:
            root, revision, ts = m.root_catalog, m.revision, m.timestamp
        else:
            rows = [t for t in repo.tags if t[2] == revision]
            if not rows:
                raise ReleaseNotFound(
                    f"revision {revision} of {self.repository} is not in the repository's signed tag history",
                    fix="list what is available with: vml release list --available",
                )
            root, ts = ContentHash.parse(rows[0][1], SUFFIX_CATALOG), rows[0][3]
        if pin is not None and pin != root.hex:
            raise SignatureError(
                f"revision {revision} of {self.repository} now has root catalog {root.hex}, "
                f"but the state recorded {pin}",
                fix="the repository history was rewritten; mount the current revision instead",
            )
        return self._pick(self._releases_at(objects, root, revision, repo.tag_for(revision), ts), name)

    @staticmethod
    def _pick(releases: list[Release], name: str) -> Release:
        for release in releases:
            if name in (release.name, f"{release.series}/{release.name}", release.path):
                return release
        raise ReleaseNotFound(
            f"no release {name!r} in this source", fix="list the releases with: vml release list --available"
        )

    def open_tree(self, release: Release, cache_dir: Path, cache_limit: int) -> ReleaseTree:
        return CvmfsTree(
            self._objects(cache_dir, cache_limit), ContentHash.parse(release.pin, SUFFIX_CATALOG), release.path
        )
