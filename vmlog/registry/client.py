"""The OCI distribution API over HTTPS: blobs (check, mount, streamed upload and download), manifests, tags.

Only the endpoints of the distribution spec, so any conformant registry serves (the CNCF distribution
registry, Harbor, GitLab, Zot, Quay). Authentication follows the registry's ``WWW-Authenticate``
challenge: Basic with the user's credentials, or the Bearer token flow (the realm is asked for a token
for the repository's scope with those credentials, or anonymously). Bodies are streamed in both
directions, so a blob of any size costs a few MiB of memory; every byte read is hashed on the way.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx

from vmlog.registry import auth
from vmlog.registry.auth import Credentials
from vmlog.registry.errors import BlobMismatch, RegistryError

PIECE = 1 << 20
TIMEOUT = httpx.Timeout(60.0, connect=15.0)
USER_AGENT = "vmlog-registry/1"
MAX_TAGS = 10_000
MAX_ERROR_BODY = 64 << 10
MAX_SMALL_BODY = 4 << 20  # a token answer or one page of tags

Sent = Callable[[int], None]


@dataclass
class Transfer:
    """What one client did on the wire: blobs uploaded, found already there, mounted; bytes each way."""

    uploaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0


def _tls_context(host: str, ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    extra = ca_file or auth.ca_file_for(host)
    if extra is not None:
        try:
            context.load_verify_locations(cafile=str(extra))
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(f"cannot load the CA certificate {extra}: {exc}",
                                fix="pass --ca-file with a PEM file holding the registry's CA") from None
    return context


class RegistryClient:
    """One registry host, one set of credentials; tokens are cached per scope for the client's life."""

    def __init__(self, host: str, *, credentials: Credentials | None = None, ca_file: Path | None = None,
                 plain_http: bool = False, transport: httpx.BaseTransport | None = None) -> None:
        self.host = host
        self.credentials = credentials
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.transfer = Transfer()
        self._scheme: str | None = None  # "basic" or "bearer", learnt from the first challenge
        self._tokens: dict[str, str] = {}
        self._challenge: dict[str, str] = {}
        verify: ssl.SSLContext | bool = True if plain_http else _tls_context(host, ca_file)
        self._http = httpx.Client(verify=verify, timeout=TIMEOUT, transport=transport, follow_redirects=True,
                                  headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the wire ------------------------------------------------------------------------------
    def _auth_header(self, scope: str) -> dict[str, str]:
        if self._scheme == "basic" and self.credentials is not None:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        if self._scheme == "bearer":
            token = self._tokens.get(scope) or self._fetch_token(scope)
            return {"Authorization": f"Bearer {token}"}
        return {}

    def _fetch_token(self, scope: str) -> str:
        realm = self._challenge.get("realm")
        if not realm or not realm.startswith(("https://", "http://")):
            raise RegistryError(f"{self.host} asked for a bearer token without a usable realm")
        params = {"scope": scope, **({"service": self._challenge["service"]} if "service" in self._challenge else {})}
        creds = self.credentials
        basic = httpx.BasicAuth(creds.username, creds.password) if creds is not None else None
        try:
            answer = self._http.send(self._http.build_request("GET", realm, params=params), auth=basic, stream=True)
            status = answer.status_code
            body = read_bounded(answer, MAX_SMALL_BODY)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if status in (401, 403):
            raise auth.wrong_credentials(self.host, creds, status)
        if status != 200:
            raise RegistryError(f"the token service of {self.host} answered HTTP {status}")
        try:
            doc = auth.decode_json_auth(body)
        except ValueError:
            raise RegistryError(f"the token service of {self.host} did not answer JSON") from None
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service of {self.host} answered no token")
        self._tokens[scope] = token
        return token

    def _unreachable(self, exc: Exception) -> RegistryError:
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLError):
            return RegistryError(
                f"the TLS certificate of {self.host} does not verify: {text}",
                fix=f"pass --ca-file CA.pem, or put the CA at /etc/containers/certs.d/{self.host}/ca.crt",
            )
        return RegistryError(f"cannot reach the registry {self.host}: {text}",
                             fix="check the host name, the port and the network (and HTTPS_PROXY / NO_PROXY)")

    def request(self, method: str, url: str, scope: str, *, stream: bool = False, **kwargs) -> httpx.Response:
        """One request with the credentials the registry asks for; a 401 learns the challenge and retries once.

        A body that is an iterator cannot be sent twice, so callers that stream a body first make a
        bodiless request in the same scope (the upload's POST) and the retry never happens for them.
        """
        full = url if url.startswith(("http://", "https://")) else self.base + url
        for attempt in (1, 2):
            headers = {**kwargs.pop("headers", {}), **self._auth_header(scope)}
            try:
                reply = self._http.send(self._http.build_request(method, full, headers=headers, **kwargs),
                                        stream=stream)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from None
            if reply.status_code != 401 or attempt == 2:
                break
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            reply.close()
            scheme, params = auth.parse_challenge(reply.headers.get("WWW-Authenticate", ""))
            if scheme == "basic" and self.credentials is not None:
                self._scheme = "basic"
            elif scheme == "bearer":
                self._scheme, self._challenge = "bearer", params
                self._tokens.pop(scope, None)
            else:
                break
        if reply.status_code in (401, 403):
            reply.close()
            raise auth.wrong_credentials(self.host, self.credentials, reply.status_code)
        return reply

    def _fail(self, reply: httpx.Response, what: str) -> RegistryError:
        detail = ""
        try:
            body = read_bounded(reply, MAX_ERROR_BODY, cut=True)
            errors = auth.decode_json_auth(body).get("errors") if body else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                detail = f": {str(errors[0].get('code'))[:60]} {str(errors[0].get('message'))[:200]}"
        except (ValueError, httpx.HTTPError, httpx.StreamError):
            pass
        reply.close()
        return RegistryError(f"{self.host} refused to {what} (HTTP {reply.status_code}{detail})")

    # -- blobs ---------------------------------------------------------------------------------
    def blob_exists(self, repo: str, digest: str) -> bool:
        reply = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull")
        if reply.status_code == 200:
            return True
        if reply.status_code == 404:
            return False
        raise self._fail(reply, f"say whether it has blob {digest}")

    def _start_upload(self, repo: str, params: dict[str, str]) -> httpx.Response:
        return self.request("POST", f"/v2/{repo}/blobs/uploads/", f"repository:{repo}:pull,push", params=params,
                            headers={"Content-Length": "0"})

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount: the registry links a blob it holds elsewhere, nothing is sent."""
        reply = self._start_upload(repo, {"mount": digest, "from": from_repo})
        if reply.status_code == 201:
            self.transfer.mounted.append(digest)
            return True
        if reply.status_code == 202:  # the registry opened an upload instead: cancel it
            location = reply.headers.get("Location")
            if location:
                self.request("DELETE", str(reply.url.join(location)), f"repository:{repo}:pull,push").close()
            return False
        raise self._fail(reply, f"mount blob {digest} from {from_repo}")

    def upload_blob(self, repo: str, digest: str, source: BinaryIO, size: int, *, chunk_size: int | None = None,
                    sent: Sent | None = None) -> None:
        """Stream ``size`` bytes from ``source`` (its current position) as blob ``digest``.

        One PUT with the whole body, or with ``chunk_size`` a PATCH per chunk and a closing PUT (for
        registries behind a proxy that limits request sizes). The registry checks the digest itself.
        """
        reply = self._start_upload(repo, {})
        if reply.status_code != 202 or not reply.headers.get("Location"):
            raise self._fail(reply, f"start an upload of {digest}")
        location = str(reply.url.join(reply.headers["Location"]))
        scope = f"repository:{repo}:pull,push"
        done = 0
        if chunk_size:
            while done < size:
                n = min(chunk_size, size - done)
                reply = self.request("PATCH", location, scope, content=_pieces(source, n, self.transfer, sent),
                                     headers={"Content-Type": "application/octet-stream", "Content-Length": str(n),
                                              "Content-Range": f"{done}-{done + n - 1}"})
                if reply.status_code != 202 or not reply.headers.get("Location"):
                    raise self._fail(reply, f"take a chunk of {digest}")
                location, done = str(reply.url.join(reply.headers["Location"])), done + n
        body: Iterator[bytes] | bytes = _pieces(source, size - done, self.transfer, sent) if size > done else b""
        closing = str(httpx.URL(location).copy_merge_params({"digest": digest}))  # keeps the upload's _state
        reply = self.request("PUT", closing, scope, content=body,
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(size - done)})
        if reply.status_code != 201:
            raise self._fail(reply, f"store blob {digest}")
        self.transfer.uploaded.append(digest)

    def download_blob(self, repo: str, digest: str, sink: BinaryIO, *, size: int, sent: Sent | None = None) -> None:
        """Stream blob ``digest`` into ``sink``; refuse more than ``size`` bytes, fewer, or other bytes."""
        reply = self.request("GET", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", stream=True)
        try:
            if reply.status_code != 200:
                raise self._fail(reply, f"send blob {digest}")
            hasher, got = hashlib.sha256(), 0
            for piece in reply.iter_bytes():  # as the transport delivers them: no re-chunking copies
                got += len(piece)
                if got > size:
                    raise BlobMismatch(f"blob {digest} is larger than the {size} bytes its descriptor says")
                hasher.update(piece)
                sink.write(piece)
                self.transfer.bytes_down += len(piece)
                if sent:
                    sent(len(piece))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        finally:
            reply.close()
        if got != size:
            raise BlobMismatch(f"blob {digest} ended after {got} of its {size} bytes")
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise BlobMismatch(f"blob {digest} does not hash to its digest (it is sha256:{hasher.hexdigest()})")

    # -- manifests and tags ----------------------------------------------------------------------
    def put_manifest(self, repo: str, target: str, data: bytes, media_type: str) -> str:
        reply = self.request("PUT", f"/v2/{repo}/manifests/{target}", f"repository:{repo}:pull,push",
                             content=data, headers={"Content-Type": media_type})
        if reply.status_code != 201:
            raise self._fail(reply, f"store the manifest {target}")
        return f"sha256:{hashlib.sha256(data).hexdigest()}"

    def get_manifest(self, repo: str, target: str, *, accept: str, max_bytes: int) -> tuple[bytes, str] | None:
        """The manifest's bytes and media type, or None if the repository has no such tag or digest."""
        reply = self.request("GET", f"/v2/{repo}/manifests/{target}", f"repository:{repo}:pull", stream=True,
                             headers={"Accept": accept})
        try:
            if reply.status_code == 404:
                return None
            if reply.status_code != 200:
                raise self._fail(reply, f"send the manifest {target}")
            data = bytearray()
            for piece in reply.iter_bytes(PIECE):
                data += piece
                if len(data) > max_bytes:
                    raise BlobMismatch(f"the manifest {target} is over {max_bytes} bytes")
            return bytes(data), reply.headers.get("Content-Type", "").split(";")[0].strip()
        finally:
            reply.close()

    def tags(self, repo: str) -> list[str]:
        """Every tag of ``repo``, following the ``Link`` pages; an unknown repository has none."""
        found: list[str] = []
        url: str | None = f"/v2/{repo}/tags/list?n=1000"
        while url and len(found) < MAX_TAGS:
            reply = self.request("GET", url, f"repository:{repo}:pull", stream=True)
            if reply.status_code == 404:
                reply.close()
                return []
            if reply.status_code != 200:
                raise self._fail(reply, f"list the tags of {repo}")
            try:
                doc = auth.decode_json_auth(read_bounded(reply, MAX_SMALL_BODY))
            except ValueError:
                raise RegistryError(f"{self.host} answered the tag list of {repo} with something not JSON") from None
            found += [t for t in doc.get("tags") or [] if isinstance(t, str)]
            link = reply.headers.get("Link", "")
            url = str(reply.url.join(link.split(";")[0].strip(" <>"))) if 'rel="next"' in link else None
        return found[:MAX_TAGS]


def read_bounded(reply: httpx.Response, limit: int, *, cut: bool = False) -> bytes:
    """A small answer's body (a token, a tag list, an error) read up to ``limit`` bytes: a registry is untrusted.

    Past the limit the body is cut (``cut``, for error texts) or refused; the response is closed either way.
    """
    data = bytearray()
    try:
        if reply.is_stream_consumed:
            data += reply.content[:limit]
        else:
            for piece in reply.iter_bytes():
                data += piece
                if len(data) > limit:
                    if cut:
                        break
                    raise RegistryError(f"{reply.url.host} sent an answer over {limit} bytes where a small one belongs")
    finally:
        reply.close()
    return bytes(data[:limit])


def _pieces(source: BinaryIO, size: int, transfer: Transfer, sent: Sent | None) -> Iterator[bytes]:
    left = size
    while left > 0:
        piece = source.read(min(PIECE, left))
        if not piece:
            raise RegistryError(f"the file being uploaded ended {left} bytes early")
        left -= len(piece)
        transfer.bytes_up += len(piece)
        if sent:
            sent(len(piece))
        yield piece
