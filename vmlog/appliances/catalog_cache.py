"""The last good copy of each remote catalog, so appliances do not vanish while a catalog server is down.

After every fetch that parses, the document is kept in the home's cache with its fetch time and the
validators the server sent (``ETag``, ``Last-Modified``), written atomically. The next read asks the
server conditionally (``If-None-Match``/``If-Modified-Since``): ``304 Not Modified`` costs no body,
and when the server cannot be reached the copy is used and the caller told how old it is.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmlog import safejson
from vmlog.appliances.http_get import (
    DEFAULT_TIMEOUT,
    MAX_REDIRECTS,
    USER_AGENT,
    _connect,
    check_url,
    describe_network_error,
)
from vmlog.errors import DownloadError, InvalidInput
from vmlog.fsutil import atomic_write_text

CACHE_FORMAT = 1
CACHE_DIR_NAME = "catalogs"  # under the home's cache: the last good copy of each remote catalog


@dataclass(frozen=True)
class CatalogCopy:
    """A catalog document as read now, or as last read when the server could not be reached."""

    document: Any
    fetched: float  # when the server last gave (or confirmed, with 304) this document
    cached: bool = False  # the server could not be reached: this is the kept copy
    reason: str = ""  # why the server could not be reached (when ``cached``)

    @property
    def fetched_label(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.fetched))


@dataclass(frozen=True)
class Answer:
    """What a conditional GET brought: a body (200) or nothing new (304), and the validators sent."""

    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


class CatalogCache:
    """One JSON file per catalog URL under ``directory`` (the home's cache)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, location: str) -> Path:
        return self.directory / f"{hashlib.sha256(location.encode()).hexdigest()[:24]}.json"

    def read(self, location: str) -> dict[str, Any] | None:
        """The kept copy of ``location``, or None (none yet, or unreadable: a new fetch replaces it)."""
        try:
            record = json.loads(self.path(location).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT or record.get("location") != location:
            return None
        return record

    def write(self, location: str, body: bytes, fetched: float, etag: str | None, last_modified: str | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"format": CACHE_FORMAT, "location": location, "fetched": fetched, "etag": etag,
                  "last_modified": last_modified, "document": body.decode("utf-8")}  # fmt: skip
        atomic_write_text(self.path(location), json.dumps(record) + "\n", mode=0o600)

    def forget(self, location: str) -> None:
        self.path(location).unlink(missing_ok=True)

    def load(self, location: str, *, parse: Callable[[bytes], Any], insecure: bool = False,
             limit: int = 4 << 20, timeout: float = DEFAULT_TIMEOUT) -> CatalogCopy:  # fmt: skip
        """The catalog at URL ``location``, parsed by ``parse`` (which raises on a bad document).

        A fresh document replaces the kept copy only once it parses; a server that cannot be reached
        (network error, HTTP error) gives the kept copy, marked ``cached``; without one the error stands.
        """
        kept = self.read(location)
        headers = {}
        if kept is not None:
            if kept.get("etag"):
                headers["If-None-Match"] = kept["etag"]
            if kept.get("last_modified"):
                headers["If-Modified-Since"] = kept["last_modified"]
        try:
            answer = conditional_get(location, headers, insecure=insecure, limit=limit, timeout=timeout)
        except DownloadError as exc:
            if kept is None:
                raise
            return CatalogCopy(parse(kept["document"].encode()), float(kept["fetched"]), True, exc.message)
        now = time.time()
        if answer.status == 304 and kept is not None:
            body = kept["document"].encode()
            document = parse(body)
            self.write(location, body, now, answer.etag or kept.get("etag"),
                       answer.last_modified or kept.get("last_modified"))  # fmt: skip
            return CatalogCopy(document, now)
        document = parse(answer.body)  # a bad new document is an error of the catalog, not of the network
        self.write(location, answer.body, now, answer.etag, answer.last_modified)
        return CatalogCopy(document, now)


def conditional_get(url: str, headers: dict[str, str], *, insecure: bool = False, limit: int = 4 << 20,
                    timeout: float = DEFAULT_TIMEOUT) -> Answer:  # fmt: skip
    """GET ``url`` with validators, under the download policy (HTTPS, bounded redirects, proxies, size limit)."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = check_url(url, insecure=insecure)
        conn, target, proxy_headers = _connect(parts, timeout)
        try:
            conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                                                 **proxy_headers, **headers})  # fmt: skip
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                url = urllib.parse.urljoin(url, resp.getheader("Location", ""))
                continue
            if resp.status not in (200, 304):
                raise DownloadError(f"could not fetch {url}: HTTP {resp.status} {resp.reason}", fix="check the URL")
            body = resp.read(limit + 1) if resp.status == 200 else b""
            if len(body) > limit:
                raise DownloadError(f"{url} is larger than {limit} bytes; refused", fix="check the URL")
            return Answer(resp.status, body, resp.getheader("ETag"), resp.getheader("Last-Modified"))
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"could not fetch {url}: {describe_network_error(exc, timeout)}",
                                fix="check the URL and your network") from exc  # fmt: skip
        finally:
            conn.close()
    raise DownloadError(f"could not fetch {url}: more than {MAX_REDIRECTS} redirects", fix="check the URL")


def parse_json(location: str, limit: int) -> Callable[[bytes], Any]:
    """The JSON reader for a catalog's bytes (the same bounds as a catalog file's)."""

    def parse(data: bytes) -> Any:
        try:
            return safejson.loads(data, what=f"catalog {location}", max_bytes=limit)
        except ValueError as exc:
            raise InvalidInput(f"catalog {location} is not valid JSON: {exc}", fix="check the URL or file") from exc

    return parse

