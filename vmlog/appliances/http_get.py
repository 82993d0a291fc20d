"""HTTP GET under the download policy: HTTPS only (plain HTTP to this machine), bounded redirects, ranges.

Standard library only. A failure worth trying the next mirror for is a :class:`MirrorFailed`; small
documents (catalogs, version and digest files) are read whole with :func:`fetch_small`.
"""

from __future__ import annotations

import http.client
import socket
import urllib.parse

from vmlog.errors import DownloadError

DEFAULT_TIMEOUT = 30.0
MAX_REDIRECTS = 5
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
USER_AGENT = "vmlog-downloader/1"


def check_url(url: str, *, insecure: bool = False) -> urllib.parse.SplitResult:
    """HTTPS only, except plain HTTP to this machine (tests, local mirrors) or with ``insecure``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return parts
    if parts.scheme == "http" and parts.hostname:
        if insecure or parts.hostname in LOCAL_HOSTS:
            return parts
        raise DownloadError(
            f"refusing plain HTTP download from {parts.hostname}: {url}",
            fix="use an https:// URL, or pass --insecure if you trust the network (the digest is still checked)",
        )
    raise DownloadError(f"unsupported URL {url!r}", fix="use an https:// URL")


class MirrorFailed(Exception):
    """One mirror failed in a way worth trying the next mirror for."""

    def __init__(self, message: str, *, integrity: bool = False) -> None:
        super().__init__(message)
        self.integrity = integrity


def open_url(url: str, offset: int, insecure: bool, timeout: float) -> tuple[http.client.HTTPResponse, str]:
    """GET ``url`` (following redirects under the same HTTPS policy), asking for bytes from ``offset``."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = check_url(url, insecure=insecure)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise MirrorFailed(describe_network_error(exc, timeout)) from exc
        if resp.status in (301, 302, 303, 307, 308):
            location = resp.getheader("Location")
            resp.close()
            conn.close()
            if not location:
                raise MirrorFailed(f"redirect ({resp.status}) without a Location")
            url = urllib.parse.urljoin(url, location)
            continue
        return resp, url
    raise MirrorFailed(f"more than {MAX_REDIRECTS} redirects")


def describe_network_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"truncated: the connection closed {exc.expected} bytes before the end"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"stalled: no data for {timeout:g} s"
    return f"{type(exc).__name__}: {exc}"


def content_range_start(value: str | None) -> tuple[int, int | None] | None:
    """Parse ``bytes START-END/TOTAL``; None if malformed."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    start, _, _end = span.partition("-")
    try:
        return int(start), (int(total) if total.strip() != "*" else None)
    except ValueError:
        return None


def fetch_small(url: str, *, insecure: bool = False, limit: int = 4 << 20, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """GET a small document (a catalog, a version file, a ``.sha256`` file) under the same URL policy.

    Refuses anything larger than ``limit`` bytes so a hostile server cannot exhaust memory.
    """
    try:
        resp, _ = open_url(url, 0, insecure, timeout)
    except MirrorFailed as exc:
        raise DownloadError(f"could not fetch {url}: {exc}", fix="check the URL and your network") from exc
    try:
        if resp.status != 200:
            raise DownloadError(f"could not fetch {url}: HTTP {resp.status} {resp.reason}", fix="check the URL")
        try:
            data = resp.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"could not fetch {url}: {describe_network_error(exc, timeout)}") from exc
        if len(data) > limit:
            raise DownloadError(f"{url} is larger than {limit} bytes; refused", fix="check the URL")
        return data
    finally:
        resp.close()
