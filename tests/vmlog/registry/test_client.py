"""The parts that need no registry: references, challenges, the Bearer token flow, hostile manifests."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import httpx
import pytest

from vmlog.bundles import BundleRejected
from vmlog.errors import InvalidInput
from vmlog.registry import auth, mapping, transfer
from vmlog.registry.client import RegistryClient
from vmlog.registry.errors import RegistryAuthError, RegistryError
from vmlog.registry.reference import parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "host", "repo", "tag", "digest"), [
    ("registry.example.org/group/states:v1", "registry.example.org", "group/states", "v1", None),
    ("127.0.0.1:5000/states", "127.0.0.1:5000", "states", None, None),
    (f"localhost/a/b/c@{DIGEST}", "localhost", "a/b/c", None, DIGEST),
    ("https://ghcr.io/lab/s:after-calibration", "ghcr.io", "lab/s", "after-calibration", None),
    ("reg.lab:443/x.y/z__w:1.0", "reg.lab:443", "x.y/z__w", "1.0", None),
])
def test_references_parse_as_the_container_tools_write_them(text, host, repo, tag, digest) -> None:
    ref = parse_reference(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repo, tag, digest)


@pytest.mark.parametrize("text", [
    "states:v1", "ubuntu", "reg.lab/UPPER", "reg.lab/a//b", "reg.lab/a:bad tag", "reg.lab/a@sha256:12",
    "reg.lab/", "reg.lab/a:-x",
])
def test_references_without_a_host_or_with_bad_parts_are_refused_with_an_example(text) -> None:
    with pytest.raises(InvalidInput):
        parse_reference(text)


def test_a_pull_needs_a_tag_or_digest() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_reference("reg.lab/states", need_target=True)
    assert "vml state list --remote" in refused.value.fix


def test_the_bearer_challenge_is_parsed() -> None:
    scheme, params = auth.parse_challenge(
        'Bearer realm="https://auth.lab/token",service="registry.lab",scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.lab/token", "service": "registry.lab", "scope": "repository:a/b:pull,push"}


def _bearer_registry(expected_user: str, token_requests: list[httpx.Request]) -> httpx.MockTransport:
    """A registry that wants a Bearer token from its realm, which wants Basic credentials (the Docker Hub flow)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.lab":
            token_requests.append(request)
            good = "Basic " + base64.b64encode(f"{expected_user}:pw".encode()).decode()
            if request.headers.get("Authorization") != good:
                return httpx.Response(401)
            return httpx.Response(200, json={"token": "t0k3n"})
        if request.headers.get("Authorization") != "Bearer t0k3n":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.lab/token",'
                                                'service="reg.lab",scope="repository:a/b:pull"'})
        return httpx.Response(200, json={"name": "a/b", "tags": ["s1", "s2"]})

    return httpx.MockTransport(handle)


def test_the_bearer_token_flow_asks_the_realm_for_the_repository_scope() -> None:
    seen: list[httpx.Request] = []
    creds = auth.Credentials("alice", "pw", "test")
    with RegistryClient("reg.lab", credentials=creds, transport=_bearer_registry("alice", seen)) as client:
        assert client.tags("a/b") == ["s1", "s2"]
        assert client.tags("a/b") == ["s1", "s2"]  # the token is kept for the scope
    assert len(seen) == 1
    assert seen[0].url.params["scope"] == "repository:a/b:pull" and seen[0].url.params["service"] == "reg.lab"


def test_a_token_service_refusing_the_credentials_names_the_fix() -> None:
    creds = auth.Credentials("mallory", "pw", "/home/m/.docker/config.json")
    with RegistryClient("reg.lab", credentials=creds, transport=_bearer_registry("alice", [])) as client:
        with pytest.raises(RegistryAuthError) as refused:
            client.tags("a/b")
    assert "mallory" in refused.value.message and ".docker/config.json" in refused.value.message
    assert "podman login reg.lab" in refused.value.fix


def test_credentials_never_show_their_password() -> None:
    assert "pw" not in repr(auth.Credentials("alice", "pw", "x"))


def test_auth_file_entries_by_every_spelling_of_the_host(tmp_path) -> None:
    path = tmp_path / "config.json"
    token = base64.b64encode(b"bob:hunter2").decode()
    path.write_text(json.dumps({"auths": {"https://reg.lab:5000/v2/": {"auth": token}}}))
    found = auth.stored_credentials("reg.lab:5000", [path])
    assert (found.username, found.password, found.source) == ("bob", "hunter2", str(path))
    assert auth.stored_credentials("other.lab", [path]) is None


def _serving(manifest: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(
        200, content=manifest, headers={"Content-Type": mapping.OCI_MANIFEST}))


def test_a_manifest_that_is_not_the_digest_asked_for_is_refused() -> None:
    body = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    other = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    with RegistryClient("reg.lab", transport=_serving(body)) as client, pytest.raises(BundleRejected) as refused:
        transfer.fetch_manifest(client, parse_reference(f"reg.lab/a@{other}"))
    assert refused.value.reason == "digest"


@pytest.mark.parametrize("body", [
    b"[" * 100 + b"]" * 100,  # deeper than any manifest
    json.dumps({"schemaVersion": 2, "mediaType": mapping.OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": DIGEST, "size": 2},
                "layers": [{"mediaType": "x", "digest": DIGEST, "size": 1}] * 50}).encode(),  # too many layers
    json.dumps({"schemaVersion": 2, "mediaType": mapping.OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": DIGEST, "size": 64 << 20}, "layers": []}).encode(),
    json.dumps({"schemaVersion": 1}).encode(),
    b"{}" + b" " * (300 << 10),  # over the size limit
])
def test_hostile_manifests_are_refused_before_any_blob_is_fetched(body: bytes) -> None:
    with pytest.raises(BundleRejected):
        mapping.parse_oci_manifest(body, "reg.lab/a:x")


def test_an_endless_tag_list_is_cut_off() -> None:
    def endless():
        yield b'{"tags": ["'
        while True:
            yield b"a" * 65536

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=endless()))
    with RegistryClient("reg.lab", transport=transport) as client, pytest.raises(RegistryError) as refused:
        client.tags("a/b")
    assert "over" in refused.value.message


def test_a_refusal_names_the_registrys_error_code() -> None:
    body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "quota exceeded"}]}
    transport = httpx.MockTransport(lambda request: httpx.Response(
        429 if request.method == "POST" else 404, json=body))
    with RegistryClient("reg.lab", transport=transport) as client:
        assert not client.blob_exists("a/b", DIGEST)
        with pytest.raises(RegistryError) as refused:
            client.upload_blob("a/b", DIGEST, io.BytesIO(b""), 0)
    assert "HTTP 429: TOOMANYREQUESTS quota exceeded" in refused.value.message
