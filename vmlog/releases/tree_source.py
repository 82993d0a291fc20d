"""A plain HTTP release tree described by a catalogue file, in the manner of GROW-FS.

The server publishes ``.vmlcatalog`` (one line per entry: kind, octal mode, size, SHA-256, mtime,
path, link target) and ``.vmlcatalog.sha256`` (the SHA-256 of the catalogue). The catalogue digest
pins a revision: every file is checked against the digest the catalogue gives it. Older catalogues
may be kept under ``.vmlcatalogs/<sha256>`` so saved states can re-mount them.

Catalogue header lines: ``# vmlog release tree 1``, ``# revision: N``, ``# tag: TEXT``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from urllib.parse import quote

from vmlog.releases.errors import BadCatalog, DigestMismatch, ReleaseNotFound, SourceUnreachable
from vmlog.releases.http_fetch import HttpFetcher
from vmlog.releases.model import Chunk, Entry, Release, ReleaseSource, ReleaseTree, walk_pattern
from vmlog.releases.object_cache import DEFAULT_LIMIT, ObjectCache

log = logging.getLogger("vmlog.releases")

CATALOGUE = ".vmlcatalog"
CATALOGUE_DIGEST = ".vmlcatalog.sha256"
OLD_CATALOGUES = ".vmlcatalogs"
MAGIC = "# vmlog release tree 1"
MAX_CATALOGUE = 1 << 30
_KINDS = {"F": "file", "D": "dir", "L": "link"}


class Catalogue:
    """A parsed catalogue: every entry by path, children by directory."""

    def __init__(self, text: str) -> None:
        lines = text.splitlines()
        if not lines or lines[0].strip() != MAGIC:
            raise BadCatalog("the release tree catalogue does not start with its format line", fix="re-publish it")
        self.revision = 0
        self.tag = ""
        self.entries: dict[str, tuple[Entry, str]] = {"": (Entry("", "dir", 0o755, 4096, 0), "")}
        self.children: dict[str, list[str]] = {"": []}
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                if key.strip() == "revision":
                    self.revision = int(value)
                elif key.strip() == "tag":
                    self.tag = value.strip()
                continue
            self._add(line, number)

    def _add(self, line: str, number: int) -> None:
        parts = line.split("\t")
        if len(parts) < 6 or parts[0] not in _KINDS:
            raise BadCatalog(f"catalogue line {number} is malformed")
        kind, mode, size, digest, mtime, path = parts[:6]
        names = path.split("/")
        if path.startswith("/") or any(n in ("", ".", "..") for n in names):
            raise BadCatalog(f"catalogue line {number} has an unsafe path {path!r}; refused")
        parent = "/".join(names[:-1])
        if parent not in self.entries or self.entries[parent][0].kind != "dir":
            raise BadCatalog(f"catalogue line {number}: {path!r} comes before its directory")
        if path in self.entries:
            raise BadCatalog(f"catalogue line {number}: {path!r} is listed twice")
        file_size = int(size)
        chunks = (Chunk(0, file_size, digest),) if kind == "F" and file_size else ()
        entry = Entry(
            names[-1], _KINDS[kind], int(mode, 8), file_size, int(mtime), parts[6] if kind == "L" else "", chunks
        )
        self.entries[path] = (entry, path)
        self.children[parent].append(path)
        if kind == "D":
            self.children[path] = []


class HttpTree(ReleaseTree):
    def __init__(self, catalogue: Catalogue, release_path: str, fetcher: HttpFetcher, cache: ObjectCache) -> None:
        self.catalogue = catalogue
        self.prefix = release_path.strip("/")
        self.fetcher = fetcher
        self.cache = cache
        self._paths: dict[str, str] = {}  # digest -> a path that has it, for fetching

    def _full(self, path: str) -> str:
        path = path.strip("/")
        return f"{self.prefix}/{path}" if path and self.prefix else (path or self.prefix)

    def lookup(self, path: str) -> Entry | None:
        found = self.catalogue.entries.get(self._full(path))
        if found is None:
            return None
        entry, full = found
        for chunk in entry.chunks:
            self._paths.setdefault(chunk.key, full)
        return entry

    def listdir(self, path: str) -> list[Entry]:
        full = self._full(path)
        if full not in self.catalogue.entries:
            raise FileNotFoundError(path)
        if full not in self.catalogue.children:
            raise NotADirectoryError(path)
        result = []
        for child in self.catalogue.children[full]:
            entry = self.catalogue.entries[child][0]
            for chunk in entry.chunks:
                self._paths.setdefault(chunk.key, child)
            result.append(entry)
        return result

    def fetch_chunk(self, chunk: Chunk) -> Path:
        key = "s" + chunk.key  # sha256 keys, kept apart from CernVM-FS object names
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        path = self._paths.get(chunk.key)
        if path is None:
            raise FileNotFoundError(chunk.key)
        data = self.fetcher.get(quote(path), max_bytes=chunk.size)
        digest = hashlib.sha256(data).hexdigest()
        if digest != chunk.key:
            log.error("digest mismatch for %s: expected sha256 %s, got %s", path, chunk.key, digest)
            raise DigestMismatch(
                f"{path} does not match the catalogue's sha256 (got {digest})",
                fix="the server or a proxy serves a modified file; it was not used",
            )
        return self.cache.put(key, data)


class HttpTreeSource(ReleaseSource):
    kind = "http-tree"

    def __init__(
        self, url: str, *, name: str | None = None, pattern: str = "{release}", proxy: str | None = None
    ) -> None:
        super().__init__(url, name=name or url.rstrip("/").rsplit("/", 1)[-1], pattern=pattern, proxy=proxy)

    def _fetcher(self) -> HttpFetcher:
        return HttpFetcher(self.url, proxy=self.proxy)

    def _catalogue(self, cache: ObjectCache, digest: str | None) -> tuple[Catalogue, str]:
        """The catalogue with ``digest`` (or the current one), verified, from the cache if there."""
        fetcher = self._fetcher()
        if digest is None:
            digest = fetcher.get(CATALOGUE_DIGEST, max_bytes=200).decode("ascii", "replace").split()[0].lower()
            path = CATALOGUE
        else:
            path = f"{OLD_CATALOGUES}/{digest}"
        key = "c" + digest
        cached = cache.get(key)
        if cached is not None:
            return Catalogue(cached.read_text("utf-8")), digest
        try:
            data = fetcher.get(path, max_bytes=MAX_CATALOGUE)
        except ReleaseNotFound:
            data = fetcher.get(CATALOGUE, max_bytes=MAX_CATALOGUE)  # the pinned one may still be current
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DigestMismatch(
                f"the release tree catalogue does not match its digest {digest} (got {got})",
                fix="the server or a proxy serves a modified catalogue; do not use it",
            )
        catalogue = Catalogue(data.decode("utf-8"))
        cache.put(key, data)
        return catalogue, digest

    def _releases(self, catalogue: Catalogue, digest: str) -> list[Release]:
        tree = HttpTree(catalogue, "", self._fetcher(), None)  # type: ignore[arg-type]
        return [
            Release(r, catalogue.revision, catalogue.tag, self.url, p, digest, s)
            for p, s, r in walk_pattern(self.pattern, tree.listdir)
        ]

    def list_releases(self, cache_dir: Path) -> list[Release]:
        return self._releases(*self._catalogue(ObjectCache(cache_dir), None))

    def resolve(self, name: str, cache_dir: Path, *, revision: int | None = None, pin: str | None = None) -> Release:
        cache = ObjectCache(cache_dir)
        try:
            catalogue, digest = self._catalogue(cache, pin)
        except SourceUnreachable:
            raise
        if revision is not None and catalogue.revision != revision:
            raise ReleaseNotFound(
                f"revision {revision} is not served (the catalogue is at revision {catalogue.revision})",
                fix="list what is available with: vml release list --available",
            )
        for release in self._releases(catalogue, digest):
            if name in (release.name, f"{release.series}/{release.name}", release.path):
                return release
        raise ReleaseNotFound(f"no release {name!r} in {self.url}", fix="vml release list --available")

    def open_tree(self, release: Release, cache_dir: Path, cache_limit: int = DEFAULT_LIMIT) -> ReleaseTree:
        cache = ObjectCache(cache_dir, cache_limit)
        catalogue, _ = self._catalogue(cache, release.pin)
        return HttpTree(catalogue, release.path, self._fetcher(), cache)
