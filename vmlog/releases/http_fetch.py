"""HTTP GETs for release servers, through the configured proxy, with a size cap per object."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from vmlog.releases.errors import ReleaseNotFound, SourceUnreachable

DEFAULT_TIMEOUT = 20.0


@dataclass
class HttpFetcher:
    """Fetches paths below ``base_url``; ``proxy`` (``http://host:port``) overrides the environment's.

    ``proxy=""`` means a direct connection even if ``http_proxy`` is set; ``None`` follows the
    environment, like every other HTTP client on the machine.
    """

    base_url: str
    proxy: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        handlers: list[urllib.request.BaseHandler] = []
        if self.proxy is not None:
            handlers.append(
                urllib.request.ProxyHandler({"http": self.proxy, "https": self.proxy} if self.proxy else {})
            )
        self._opener = urllib.request.build_opener(*handlers)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(self, path: str, *, max_bytes: int = 1 << 34) -> bytes:
        """The whole body of ``path``; ``ReleaseNotFound`` on 404, ``SourceUnreachable`` otherwise."""
        url = self.url(path)
        request = urllib.request.Request(url, headers={"User-Agent": "vmlog-releases", "Cache-Control": "no-cache"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                data = response.read(max_bytes + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ReleaseNotFound(f"{url} does not exist on the server (HTTP 404)") from exc
            raise SourceUnreachable(
                f"{url} answered HTTP {exc.code}", fix="check the server, or the proxy setting of the source"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceUnreachable(
                f"cannot reach {url}: {reason}",
                fix="check the network and the proxy (vml release source add --proxy), or use a cached release",
            ) from exc
        if len(data) > max_bytes:
            raise SourceUnreachable(f"{url} is larger than the {max_bytes}-byte limit for this kind of object")
        return data
