"""HTTP GET under the download policy: HTTPS only (plain HTTP to this machine), bounded redirects, ranges.

Standard library only. A failure worth trying the next mirror for is a :class:`MirrorFailed`; small
documents (catalogs, version and digest files) are read whole with :func:`fetch_small`. A large body
is read with :class:`BodyReader` under :class:`TransferLimits`: a stall timeout per receive, an
overall deadline and a minimum rate, so a server that drips bytes cannot keep a pull going for ever.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from vmlog.errors import Cancelled, DownloadError

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

    def __init__(self, message: str, *, integrity: bool = False, wrong_bytes: bool = False) -> None:
        super().__init__(message)
        self.integrity = integrity or wrong_bytes
        self.wrong_bytes = wrong_bytes  # the whole file did not hash to its digest


def proxy_for(parts: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
    """The proxy ``http_proxy``/``https_proxy`` name for this URL, unless ``no_proxy`` exempts its host.

    Read from the environment on every call, as curl and the release fetcher do, so a lab's proxy
    settings apply to appliance and catalog downloads alike.
    """
    import urllib.request  # here: only downloads pay for it

    proxy = urllib.request.getproxies_environment().get(parts.scheme)
    if not proxy or not parts.hostname:
        return None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if urllib.request.proxy_bypass_environment(host):
        return None
    proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if proxy_parts.scheme != "http" or not proxy_parts.hostname:  # TLS to the proxy itself is not supported
        raise DownloadError(
            f"cannot use the proxy {proxy!r} from {parts.scheme}_proxy (only http:// proxies are supported)",
            fix=f"set {parts.scheme}_proxy to http://HOST:PORT",
        )
    return proxy_parts


def _proxy_auth(proxy: urllib.parse.SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    import base64

    user = urllib.parse.unquote(proxy.username)
    password = urllib.parse.unquote(proxy.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Proxy-Authorization": f"Basic {token}"}


def _connect(parts: urllib.parse.SplitResult, timeout: float) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """A connection for ``parts`` (through the proxy the environment names), the request target, proxy headers."""
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxy = proxy_for(parts)
    if proxy is None:
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout), target, {}
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), target, {}
    auth = _proxy_auth(proxy)
    if parts.scheme == "https":  # a CONNECT tunnel: TLS and its certificate check run end to end, through the proxy
        tunnel = http.client.HTTPSConnection(proxy.hostname, proxy.port or 3128, timeout=timeout)
        tunnel.set_tunnel(parts.hostname, parts.port or 443, headers=auth)
        return tunnel, target, {}
    conn = http.client.HTTPConnection(proxy.hostname, proxy.port or 3128, timeout=timeout)
    return conn, urllib.parse.urlunsplit(parts._replace(fragment="")), auth  # plain HTTP: the absolute URL


def open_url(url: str, offset: int, insecure: bool, timeout: float) -> tuple[http.client.HTTPResponse, str]:
    """GET ``url`` (following redirects under the same HTTPS policy), asking for bytes from ``offset``.

    ``http_proxy``, ``https_proxy`` and ``no_proxy`` are honoured (:func:`proxy_for`).
    """
    for _ in range(MAX_REDIRECTS + 1):
        parts = check_url(url, insecure=insecure)
        conn, target, proxy_headers = _connect(parts, timeout)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **proxy_headers}
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


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("download cancelled; the partial file is kept and the next pull resumes it")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class TransferLimits:
    """How long and how slowly a download may go on, and how far a body of unknown size may grow.

    The defaults can be changed with ``VMLOG_DOWNLOAD_DEADLINE`` (seconds), ``VMLOG_DOWNLOAD_MIN_RATE``
    (bytes per second) and ``VMLOG_DOWNLOAD_RATE_WINDOW`` (seconds over which the rate is measured).
    """

    deadline: float = field(default_factory=lambda: _env_float("VMLOG_DOWNLOAD_DEADLINE", 6 * 3600.0))
    min_rate: float = field(default_factory=lambda: _env_float("VMLOG_DOWNLOAD_MIN_RATE", 1024.0))
    rate_window: float = field(default_factory=lambda: _env_float("VMLOG_DOWNLOAD_RATE_WINDOW", 60.0))
    max_unknown_size: int = 64 << 30  # a body with no size announced anywhere stops here
    reserve: int = 256 << 20  # ... or when the disk has less than this left


def _rate(value: float) -> str:
    return f"{value / 1024:.1f} KiB/s" if value >= 1024 else f"{value:.1f} bytes/s"


class TransferWatch:
    """Checks one transfer against its limits between receives: cancel, deadline, minimum rate."""

    def __init__(self, limits: TransferLimits, stall_timeout: float) -> None:
        self.limits = limits
        self.stall_timeout = stall_timeout
        self.start = self.window_start = time.monotonic()
        self.window_bytes = 0

    def check(self, received: int, cancel: threading.Event | None) -> None:
        check_cancel(cancel)
        now = time.monotonic()
        self.window_bytes += received
        if now - self.start > self.limits.deadline:
            raise MirrorFailed(f"past the deadline: the download took more than {self.limits.deadline:g} s")
        elapsed = now - self.window_start
        if elapsed >= self.limits.rate_window:
            rate = self.window_bytes / elapsed
            if rate < self.limits.min_rate:
                raise MirrorFailed(
                    f"the server is too slow: {_rate(rate)} over the last {elapsed:.0f} s,"
                    f" below the minimum of {_rate(self.limits.min_rate)}"
                )
            self.window_start, self.window_bytes = now, 0


SPLICE_STEP = 1 << 20  # bytes one splice may move into the pipe (its capacity is raised to this where allowed)


class BodyReader:
    """A response body read straight from its socket, one receive at a time.

    ``HTTPResponse.readinto`` loops inside C until a large buffer is full, so a server sending one
    byte every few seconds would never let the caller look at the clock or at a cancel; here the
    socket is polled in short slices, so a cancel, the deadline and the rate are checked at least
    every :attr:`POLL_S` however the server behaves, and what arrived before a silence is handed on
    to be written. Large buffers are filled without extra copies. A chunked body goes through
    ``http.client``, which knows its framing.
    """

    FILL_FOR = 0.5  # seconds a buffer is filled at most before its bytes go to the disk
    POLL_S = 0.25

    def __init__(self, resp: http.client.HTTPResponse, stall_timeout: float) -> None:
        self.resp = resp
        self.stall_timeout = stall_timeout
        self.remaining: int | None = resp.length  # None: until the server closes the connection
        self.raw = None if resp.chunked else getattr(resp.fp, "raw", None)
        self.sock = getattr(self.raw, "_sock", None)  # socket.SocketIO keeps its socket there
        self.drained = False  # what the buffered reader held after the headers was taken

    def _read_once(self, view: memoryview) -> int:
        if self.remaining is not None:
            if self.remaining <= 0:
                return 0
            view = view[: self.remaining]
        if self.raw is None:
            return self.resp.readinto(view)
        if not self.drained:
            self.drained = True
            held = self.resp.fp.read1(len(view))  # the bytes read with the headers, or one receive
            view[: len(held)] = held
            n = len(held)
        else:
            n = self.raw.readinto(view) or 0
        if self.remaining is not None:
            if n == 0:
                raise http.client.IncompleteRead(b"", self.remaining)
            self.remaining -= n
        return n

    def _wait_readable(self, check: Callable[[int], None], holding: bool) -> bool:
        """Wait until the socket has bytes; False when it is silent and ``holding`` bytes to hand on first."""
        if self.remaining == 0 or self.sock is None or not self.drained:
            return True
        if hasattr(self.sock, "pending") and self.sock.pending():  # TLS: bytes decrypted already
            return True
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLPRI)
        silent = 0.0
        while not poller.poll(self.POLL_S * 1000):
            silent += self.POLL_S
            check(0)
            if holding:
                return False
            if silent >= self.stall_timeout:
                raise TimeoutError(f"no data for {self.stall_timeout:g} s")
        return True

    def can_splice(self) -> bool:
        """Whether the rest of the body can go from the socket to a file inside the kernel (:meth:`splice`).

        Plain HTTP only (TLS decrypts in user space), not chunked (``http.client`` reads the framing), and
        only once the bytes buffered with the headers were taken.
        """
        return self.drained and self.sock is not None and not hasattr(self.sock, "pending") and hasattr(os, "splice")

    def splice(
        self, pipe_in: int, size: int, sink: Callable[[int], None], check: Callable[[int], None]
    ) -> tuple[int, BaseException | None]:
        """As :meth:`fill`, but up to ``size`` bytes move from the socket into ``pipe_in``, then ``sink(n)`` takes them.

        The body never passes through Python: the caller's ``sink`` splices the pipe into its file.
        Returns the bytes the sink took and what stopped the body early, as :meth:`fill` does.
        """
        got = 0
        started = time.monotonic()
        assert self.sock is not None
        try:
            check(0)
            while got < size and self._wait_readable(check, holding=got > 0):
                want = size - got if self.remaining is None else min(size - got, self.remaining)
                if want <= 0:
                    break
                try:
                    n = os.splice(self.sock.fileno(), pipe_in, min(want, SPLICE_STEP), flags=os.SPLICE_F_MOVE)
                except BlockingIOError:  # readable for poll, nothing for splice: wait again
                    continue
                if n == 0 and self.remaining is not None:
                    raise http.client.IncompleteRead(b"", self.remaining)
                if n:
                    sink(n)
                    if self.remaining is not None:
                        self.remaining -= n
                got += n
                check(n)
                if not n or time.monotonic() - started > self.FILL_FOR:
                    break
        except (Exception, KeyboardInterrupt) as exc:
            return got, exc
        return got, None

    def fill(self, buf: bytearray | memoryview, check: Callable[[int], None]) -> tuple[int, BaseException | None]:
        """Receive into ``buf`` until it is full, the body ends, the socket falls silent or :attr:`FILL_FOR` passed.

        Returns the bytes received (0 at the end of the body) and what stopped the body early (a
        stall, a cancel, a limit) if anything did, so that the caller keeps those bytes before
        raising it. ``check(n)`` runs before the first receive, after each with the bytes it
        brought, and every :attr:`POLL_S` while the server is silent.
        """
        got = 0
        started = time.monotonic()
        with memoryview(buf) as view:
            try:
                check(0)
                while got < len(buf) and self._wait_readable(check, holding=got > 0):
                    n = self._read_once(view[got:])
                    got += n
                    check(n)
                    if not n or time.monotonic() - started > self.FILL_FOR:
                        break
            except (Exception, KeyboardInterrupt) as exc:
                return got, exc
        return got, None
