"""Two homes share states through a real registry (TLS with a private CA, htpasswd): push, pull, list, refusals."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from registry_helpers import RunningRegistry, context_at

from hypervisors import qemu_img
from vmlog.app import projects, states
from vmlog.app import registry as app_registry
from vmlog.bundles import BundleRejected, KnownSigners
from vmlog.bundles.errors import Untrusted
from vmlog.bundles.signing import SigningKey
from vmlog.registry import mapping
from vmlog.registry.errors import BlobMismatch, RegistryAuthError
from vmlog.workspace import Workspace

BASE_SIZE = 4 * 1024 * 1024


def write_pattern(image: Path, pattern: int, offset: int, length: int, fmt: str = "qcow2") -> None:
    """Bytes written into an image as a guest writes them (through qemu's block layer)."""
    subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P {pattern} {offset} {length}", str(image)],
                   check=True, capture_output=True)


@dataclass
class Sender:
    ctx: Workspace
    repo: str  # host/repo
    login: app_registry.Login
    s1: str
    s2: str


def login_for(registry: RunningRegistry, password: str | None = None) -> app_registry.Login:
    return app_registry.Login(registry.user, password or registry.password, ca_file=registry.ca_file)


def layer(ctx: Workspace, project: str, state_id: str) -> Path:
    files = ctx.projects.get(project)
    return files.layers.path(files.states()[state_id].layers["system"])


def home_listing(ctx: Workspace) -> tuple[list[str], list[str], list[str]]:
    """What a failed pull must leave as it was: projects, store images, and the files under data/ but the logbook."""
    files = sorted(str(p.relative_to(ctx.home.data)) for p in ctx.home.data.rglob("*")
                   if not p.name.startswith(ctx.home.logbook.name))
    return sorted(ctx.projects.names()), sorted(i.sha256 for i in ctx.images.list()), files


@pytest.fixture
def sender(tmp_path: Path, registry: RunningRegistry) -> Sender:
    """Home A: project ``analysis`` on a base no URL serves, states s1 and s2 (on s1), both pushed."""
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * BASE_SIZE)
    write_pattern(base, 0x11, 0, 1024 * 1024, fmt="raw")
    ctx = context_at(tmp_path / "home-a")
    image = ctx.images.add_file(base, name="testbase", version="1", format="raw")
    projects.new_project("analysis", image.sha256, ctx=ctx)
    files = ctx.projects.get("analysis")
    write_pattern(files.layers.path(files.load().live["system"]), 0x22, 64 * 1024, 128 * 1024)
    s1 = states.save_state("analysis", "s1", message="calibrated", ctx=ctx)
    live = files.layers.path(files.load().live["system"])
    write_pattern(live, 0x33, 2 * 1024 * 1024, 64 * 1024)
    write_pattern(live, 0x00, 0, 64 * 1024)
    s2 = states.save_state("analysis", "s2", ctx=ctx)
    repo = f"{registry.host}/group/{tmp_path.name.lower().replace('_', '-')}"
    return Sender(ctx, repo, login_for(registry), s1.id, s2.id)


def push_both(a: Sender) -> tuple[app_registry.PushResult, app_registry.PushResult]:
    first = app_registry.push_state(f"{a.repo}:s1", "analysis", "s1", login=a.login, ctx=a.ctx)
    second = app_registry.push_state(f"{a.repo}:s2", "analysis", "s2", since="s1", login=a.login, ctx=a.ctx)
    return first, second


def knows(receiver: Workspace, sender: Workspace) -> None:
    """The receiver accepts the sender's signing key, as after `vml state import --remember-signer`."""
    key = SigningKey.load_or_create(sender.home.config, "alice@lab")
    KnownSigners(receiver.home.config).add("alice@lab", base64.b64encode(key.public_bytes).decode())


def test_pull_of_an_incremental_state_brings_its_parent_and_the_base(
    sender: Sender, registry: RunningRegistry, tmp_path: Path
) -> None:
    first, second = push_both(sender)
    assert first.reference.endswith(":s1") and second.parent_digest == first.digest
    assert first.base_manifest == second.base_manifest
    base_digest = "sha256:" + sender.ctx.images.list()[0].sha256
    assert base_digest in first.uploaded and base_digest in second.present  # the base is sent once

    b = context_at(tmp_path / "home-b")
    knows(b, sender.ctx)
    assert b.images.list() == []
    pulled = app_registry.pull_state(f"{sender.repo}:s2", login=sender.login, ctx=b)
    assert pulled.parents == [f"{sender.repo}@{first.digest}"]
    assert pulled.imported.state_id == sender.s2 and pulled.imported.signer.known
    assert b.images.find(base_digest.split(":")[1]) is not None
    project = pulled.imported.project
    for sid in (sender.s1, sender.s2):
        assert qemu_img.compare(layer(b, project, sid), "qcow2", layer(sender.ctx, "analysis", sid), "qcow2")
    assert b.projects.get(project).states()[sender.s2].parent == sender.s1


def test_a_second_push_uploads_nothing(sender: Sender, registry: RunningRegistry) -> None:
    push_both(sender)
    before = registry.blob_puts()
    again = app_registry.push_state(f"{sender.repo}:s1", "analysis", "s1", login=sender.login, ctx=sender.ctx)
    assert again.uploaded == [] and again.bytes_uploaded == 0
    assert registry.blob_puts() == before
    # the same state under another tag: a new manifest (new signature, logbook), the disk layers not sent again
    other = app_registry.push_state(f"{sender.repo}:s1-again", "analysis", "s1", login=sender.login, ctx=sender.ctx)
    disk = disk_digests(sender, registry, "s1")
    assert disk and disk == disk_digests(sender, registry, "s1-again") and not set(disk) & set(other.uploaded)
    assert registry.blob_puts() == before + len(other.uploaded)


def test_a_base_pushed_before_is_mounted_into_another_repository(sender: Sender) -> None:
    first = app_registry.push_state(f"{sender.repo}:s1", "analysis", "s1", login=sender.login, ctx=sender.ctx)
    other = app_registry.push_state(f"{sender.repo}-copy:s1", "analysis", "s1", login=sender.login, ctx=sender.ctx)
    base = "sha256:" + sender.ctx.images.list()[0].sha256
    assert base in first.uploaded and other.mounted == [base] and base not in other.uploaded


def test_a_pushed_artefact_follows_the_oci_artefact_layout(sender: Sender, registry: RunningRegistry) -> None:
    first, second = push_both(sender)
    repo = sender.repo.split("/", 1)[1]
    with raw_http(registry) as http:
        doc = http.get(f"https://{registry.host}/v2/{repo}/manifests/s2",
                       headers={"Accept": mapping.OCI_MANIFEST}).json()
    assert doc["mediaType"] == mapping.OCI_MANIFEST and doc["artifactType"] == "application/vnd.vmlog.state.v1"
    assert doc["config"]["mediaType"] == mapping.CONFIG_TYPE
    assert doc["subject"]["digest"] == first.digest
    titles = [d["annotations"]["org.opencontainers.image.title"] for d in doc["layers"]]
    assert titles[:2] == ["manifest.sig", "logbook.json"] and titles[2].startswith("disk-system.")
    notes = doc["annotations"]
    assert notes[mapping.STATE_NAME] == "s2" and notes[mapping.PARENT_ID] == sender.s1
    assert notes[mapping.SIGNER] and notes[mapping.BASE_MANIFEST] == first.base_manifest


def test_list_remote_names_the_states(sender: Sender, registry: RunningRegistry) -> None:
    push_both(sender)
    listing = app_registry.list_remote(sender.repo, login=sender.login)
    by_tag = {e.tag: e for e in listing.entries}
    assert by_tag["s1"].kind == "state" and by_tag["s1"].state_name == "s1" and by_tag["s1"].parent is None
    assert by_tag["s2"].parent == sender.s1 and by_tag["s2"].state_id == sender.s2
    assert [e.kind for e in listing.entries if e.tag.startswith("base-")] == ["base"]
    json.dumps(listing.to_dict())


def test_wrong_credentials_are_named_with_the_fix(sender: Sender, registry: RunningRegistry) -> None:
    with pytest.raises(RegistryAuthError) as refused:
        app_registry.list_remote(sender.repo, login=login_for(registry, "not-the-password"))
    assert "physicist" in refused.value.message and "podman login" in refused.value.fix
    with pytest.raises(RegistryAuthError) as none:
        app_registry.list_remote(sender.repo, login=app_registry.Login(ca_file=registry.ca_file))
    assert "none were found" in none.value.message


def test_an_unknown_ca_is_refused_with_the_fix(sender: Sender) -> None:
    from vmlog.registry.errors import RegistryError

    with pytest.raises(RegistryError) as refused:
        app_registry.list_remote(sender.repo, login=app_registry.Login("x", "y"))
    assert "--ca-file" in refused.value.fix


def test_an_unknown_signer_is_refused_with_nothing_written(sender: Sender, tmp_path: Path) -> None:
    push_both(sender)
    c = context_at(tmp_path / "home-c")
    before = home_listing(c)
    with pytest.raises(Untrusted):
        app_registry.pull_state(f"{sender.repo}:s1", login=sender.login, ctx=c)
    assert home_listing(c) == before
    assert not list(c.home.cache.glob("registry-pull-*"))


def test_a_tampered_blob_is_refused_with_nothing_written(
    sender: Sender, registry: RunningRegistry, tmp_path: Path
) -> None:
    first, _ = push_both(sender)
    c = context_at(tmp_path / "home-c")
    knows(c, sender.ctx)
    before = home_listing(c)
    doc = json.loads(registry_manifest(registry, sender, "s1"))
    disk = next(d for d in doc["layers"] if d["annotations"][mapping.TITLE].startswith("disk-"))
    blob = registry.blob_file(disk["digest"])
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        with pytest.raises(BlobMismatch):
            app_registry.pull_state(f"{sender.repo}:s1", login=sender.login, ctx=c)
    finally:
        blob.write_bytes(original)
    assert home_listing(c) == before


def raw_http(registry: RunningRegistry) -> httpx.Client:
    """A plain HTTP client on the registry, to read and write what vmlog would not."""
    return httpx.Client(verify=ssl.create_default_context(cafile=str(registry.ca_file)),
                        auth=(registry.user, registry.password))


def disk_digests(a: Sender, registry: RunningRegistry, tag: str) -> list[str]:
    doc = json.loads(registry_manifest(registry, a, tag))
    return [d["digest"] for d in doc["layers"] if d["annotations"][mapping.TITLE].startswith("disk-")]


def registry_manifest(registry: RunningRegistry, a: Sender, tag: str) -> bytes:
    repo = a.repo.split("/", 1)[1]
    with raw_http(registry) as http:
        return http.get(f"https://{registry.host}/v2/{repo}/manifests/{tag}",
                        headers={"Accept": mapping.OCI_MANIFEST}).content


def test_a_layer_with_the_wrong_digest_is_refused_with_nothing_written(
    sender: Sender, registry: RunningRegistry, tmp_path: Path
) -> None:
    push_both(sender)
    doc = json.loads(registry_manifest(registry, sender, "s1"))
    logbook = next(d for d in doc["layers"] if d["annotations"][mapping.TITLE] == "logbook.json")
    disk = next(d for d in doc["layers"] if d["annotations"][mapping.TITLE].startswith("disk-"))
    disk["digest"], disk["size"] = logbook["digest"], logbook["size"]  # a real blob, not the announced one
    body = json.dumps(doc).encode()
    repo = sender.repo.split("/", 1)[1]
    with raw_http(registry) as http:
        put = http.put(f"https://{registry.host}/v2/{repo}/manifests/bad-digest", content=body,
                       headers={"Content-Type": mapping.OCI_MANIFEST})
    assert put.status_code == 201, put.text
    c = context_at(tmp_path / "home-c")
    knows(c, sender.ctx)
    before = home_listing(c)
    with pytest.raises(BundleRejected) as refused:
        app_registry.pull_state(f"{sender.repo}:bad-digest", login=sender.login, ctx=c)
    assert refused.value.reason == "digest"
    assert home_listing(c) == before


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """``directory`` over plain HTTP on 127.0.0.1 (the base's URL in the manifest); yields the base URL."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_base_the_registry_lost_comes_from_the_manifests_url(registry: RunningRegistry, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    base = www / "base.img"
    base.write_bytes(b"\0" * BASE_SIZE)
    write_pattern(base, 0x66, 0, 256 * 1024, fmt="raw")
    a = context_at(tmp_path / "home-a")
    login = login_for(registry)
    repo = f"{registry.host}/group/url-fallback"
    with serve_directory(www) as url:
        image = a.images.add_file(base, name="served", version="1", format="raw", urls=[f"{url}/base.img"])
        projects.new_project("served", image.sha256, ctx=a)
        files = a.projects.get("served")
        write_pattern(files.layers.path(files.load().live["system"]), 0x77, 0, 64 * 1024)
        saved = states.save_state("served", "one", ctx=a)
        app_registry.push_state(f"{repo}:one", "served", "one", login=login, ctx=a)
        with raw_http(registry) as http:  # the registry's administrator removed the base
            assert http.delete(f"https://{registry.host}/v2/group/url-fallback/blobs/sha256:{image.sha256}"
                               ).status_code == 202
        b = context_at(tmp_path / "home-b")
        pulled = app_registry.pull_state(f"{repo}:one", trust=True, login=login, ctx=b)
    assert not pulled.base_from_registry and pulled.imported.base_downloaded
    assert qemu_img.compare(layer(b, pulled.imported.project, saved.id), "qcow2", layer(a, "served", saved.id), "qcow2")


def test_a_chunked_upload_and_a_mount_from_another_repository(registry: RunningRegistry, tmp_path: Path) -> None:
    """PATCH chunks then the closing PUT (for proxies that limit request sizes); a mount sends no bytes at all."""
    from vmlog.registry.auth import Credentials
    from vmlog.registry.client import RegistryClient

    data = os.urandom(3 * 1024 * 1024 + 123)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    creds = Credentials(registry.user, registry.password, "test")
    with RegistryClient(registry.host, credentials=creds, ca_file=registry.ca_file) as client:
        client.upload_blob("group/chunked", digest, io.BytesIO(data), len(data), chunk_size=1 << 20)
        sink = io.BytesIO()
        client.download_blob("group/chunked", digest, sink, size=len(data))
        assert sink.getvalue() == data
        sent = client.transfer.bytes_up
        assert client.mount_blob("group/mounted", digest, "group/chunked")
        assert client.transfer.bytes_up == sent and client.blob_exists("group/mounted", digest)
