"""Sharing states between two vmlog homes: export, import (base fetched over HTTP), incremental, trust, mail.

The disks here are small images written through qemu's block layer; ``test_exchange_vm.py`` does
the same with a booted guest.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from chain_helpers import write_pattern
from exchange_helpers import context_at, serve_directory, vml

from hypervisors import qemu_img
from vmlog.app import exchange, logbook, projects
from vmlog.app import states as app_states
from vmlog.bundles import BundleRejected
from vmlog.errors import NotFound
from vmlog.projects.sender_log import read_sender_logbook
from vmlog.workspace import Workspace


@pytest.fixture
def served_base(tmp_path: Path, base_image: Path):
    """The base image published on a real HTTP server on 127.0.0.1."""
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(base_image, www / "base.img")
    with serve_directory(www) as url:
        yield www / "base.img", f"{url}/base.img"


@pytest.fixture
def sender(tmp_path: Path, served_base) -> Workspace:
    """User A: project ``analysis`` on the published base, states s1 and s2 (s2 saved after s1)."""
    path, url = served_base
    ctx = context_at(tmp_path / "home-a")
    image = ctx.images.add_file(path, name="testbase", version="1", format="raw", urls=[url])
    projects.new_project("analysis", image.sha256, ctx=ctx)
    files = ctx.projects.get("analysis")
    write_pattern(files.layers.path(files.load().live["system"]), 0x22, 64 * 1024, 128 * 1024)
    app_states.save_state("analysis", "s1", message="calibrated", ctx=ctx)
    live = files.layers.path(files.load().live["system"])
    write_pattern(live, 0x33, 2 * 1024 * 1024, 64 * 1024)
    write_pattern(live, 0x00, 0, 64 * 1024)  # zeroes over base data
    app_states.save_state("analysis", "s2", ctx=ctx)
    logbook.add_note("ready for review", project_name="analysis", ref="s2", ctx=ctx)
    return ctx


def _layer(ctx: Workspace, project: str, state_id: str) -> Path:
    files = ctx.projects.get(project)
    return files.layers.path(files.states()[state_id].layers["system"])


def _same(
    receiver: Workspace, project: str, state_id: str, sender: Workspace, sender_state: str
) -> bool:
    """``qemu-img compare`` of a rebuilt state's disk with the sender's (guest-visible bytes)."""
    return qemu_img.compare(
        _layer(receiver, project, state_id), "qcow2", _layer(sender, "analysis", sender_state), "qcow2"
    )


def test_full_then_incremental_round_trip(sender: Workspace, tmp_path: Path) -> None:
    receiver = context_at(tmp_path / "home-b")
    assert receiver.images.list() == []
    _project, a_states = app_states.states("analysis", ctx=sender)
    s1 = next(s for s in a_states.values() if s.name == "s1")
    s2 = next(s for s in a_states.values() if s.name == "s2")

    full = exchange.export_state("analysis", "s1", tmp_path, ctx=sender)
    assert full.fits_mail and full.since_id is None and full.signer_fingerprint
    result = exchange.import_state(full.path, trust=True, ctx=receiver)
    assert result.new_project and result.base_downloaded and result.state_id == s1.id
    assert result.signer is not None and not result.signer.known
    assert receiver.images.find(sender.images.list()[0].sha256) is not None
    assert _same(receiver, result.project, s1.id, sender, s1.id)
    project, b_states = app_states.states(result.project, ctx=receiver)
    assert project.current == s1.id and b_states[s1.id].name == "s1" and b_states[s1.id].author == s1.author

    incremental = exchange.export_state("analysis", "s2", tmp_path, since="s1", ctx=sender)
    (full_disk,) = exchange.inspect_bundle(full.path, ctx=receiver).disks
    (incremental_disk,) = exchange.inspect_bundle(incremental.path, ctx=receiver).disks
    # changed blocks travel as data or, when their bytes are already there, as references
    assert (full_disk["changed_bytes"] + full_disk["referenced_bytes"], full_disk["zeroed_bytes"]) == (128 * 1024, 0)
    assert incremental_disk["changed_bytes"] + incremental_disk["referenced_bytes"] == 64 * 1024
    assert incremental_disk["zeroed_bytes"] == 64 * 1024
    second = exchange.import_state(incremental.path, trust=True, ctx=receiver)
    assert second.project == result.project and not second.new_project and second.since_id == s1.id
    b_states = app_states.states(result.project, ctx=receiver)[1]
    assert b_states[s2.id].parent == s1.id
    assert _same(receiver, result.project, s2.id, sender, s2.id)
    assert not _same(receiver, result.project, s1.id, sender, s2.id)
    # the imported states are ordinary states: restore works and the logbook says who sent them
    app_states.restore_state(result.project, "s2", discard=True, ctx=receiver)
    rows = [e for e in logbook.history(result.project, ctx=receiver) if e.get("action") == "state import"]
    assert [r["outcome"] for r in rows] == ["ok", "ok"]
    assert s1.author in rows[0]["message"] and "unknown key" in rows[0]["message"]
    sender_rows = read_sender_logbook(receiver.projects.get(result.project), s2.id)
    assert any(r.get("text") == "ready for review" for r in sender_rows)


def test_incremental_refused_without_or_with_different_since_state(
    sender: Workspace, tmp_path: Path
) -> None:
    receiver = context_at(tmp_path / "home-b")
    incremental = exchange.export_state("analysis", "s2", tmp_path, since="s1", ctx=sender)
    with pytest.raises(NotFound, match="full bundle"):
        exchange.import_state(incremental.path, trust=True, ctx=receiver)
    assert receiver.projects.names() == []

    # B has s1, but its copy was changed after import (a hand-edited layer): the digests disagree
    full = exchange.export_state("analysis", "s1", tmp_path, ctx=sender)
    imported = exchange.import_state(full.path, trust=True, ctx=receiver)
    write_pattern(_layer(receiver, imported.project, imported.state_id), 0x44, 0, 4096)
    with pytest.raises(BundleRejected) as exc:
        exchange.import_state(incremental.path, trust=True, ctx=receiver)
    assert exc.value.reason == "since"
    assert len(app_states.states(imported.project, ctx=receiver)[1]) == 1


def test_signed_bundle_from_a_known_key_needs_no_trust(sender: Workspace, tmp_path: Path) -> None:
    receiver = context_at(tmp_path / "home-b")
    bundle = exchange.export_state("analysis", "s1", tmp_path, signer="Alice <alice@example.org>", ctx=sender)
    with pytest.raises(exchange.Untrusted, match="unknown key"):
        exchange.import_state(bundle.path, ctx=receiver)
    asked = []
    with pytest.raises(exchange.Untrusted):
        exchange.import_state(
            bundle.path, confirm=lambda b: asked.append(b.signer.name) or False, ctx=receiver
        )
    assert asked == ["Alice <alice@example.org>"] and receiver.projects.names() == []
    result = exchange.import_state(bundle.path, confirm=lambda b: True, ctx=receiver)
    exchange.remember_signer(receiver, result.signer)
    again = exchange.import_state(bundle.path, project="second-copy", ctx=receiver)
    assert again.signer.known and again.signer.known_as == "Alice <alice@example.org>"


def test_own_bundle_imports_into_its_home_without_trust(sender: Workspace, tmp_path: Path) -> None:
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender)
    result = exchange.import_state(bundle.path, project="my-copy", ctx=sender)
    assert result.signer is not None and result.signer.known
    assert not (sender.home.config / "known-signers.json").exists()


def test_full_bundle_into_existing_project_is_a_new_branch(sender: Workspace, tmp_path: Path) -> None:
    receiver = context_at(tmp_path / "home-b")
    a = exchange.export_state("analysis", "s1", tmp_path, ctx=sender)
    first = exchange.import_state(a.path, trust=True, project="mine", ctx=receiver)
    b = exchange.export_state("analysis", "s2", tmp_path, ctx=sender)  # full, not incremental
    second = exchange.import_state(b.path, trust=True, project="mine", ctx=receiver)
    assert first.new_project and not second.new_project
    states = app_states.states("mine", ctx=receiver)[1]
    assert states[second.state_id].parent is None  # on the base: a second root branch
    assert _same(receiver, "mine", second.state_id, sender, b.state_id)


def test_cli_refuses_unsigned_bundle_without_tty_or_trust(sender: Workspace, tmp_path: Path) -> None:
    home_a, home_b = sender.home.data.parent, tmp_path / "home-b"
    exported = vml(
        home_a, "state", "export", "s1", "-p", "analysis", "-o", str(tmp_path), "--no-sign", "--json"
    )
    assert exported.returncode == 0, exported.stderr
    path = Path(json.loads(exported.stdout)["path"])
    assert "fits a 25 MB mail attachment" in exported.stderr

    refused = vml(home_b, "state", "import", str(path))
    assert refused.returncode == exchange.Untrusted.exit_code, refused.stderr
    assert "is not signed; it was not imported" in refused.stderr and "--trust" in refused.stderr
    assert not (home_b / "data" / "projects").exists() or not any((home_b / "data" / "projects").iterdir())

    accepted = vml(home_b, "state", "import", str(path), "--trust", "--json")
    assert accepted.returncode == 0, accepted.stderr
    data = json.loads(accepted.stdout)
    assert data["new_project"] and data["base_downloaded"] and data["signer"] is None


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(envelope.original_content)
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_state_send_mails_a_bundle_that_imports(sender: Workspace, tmp_path: Path, smtp_inbox) -> None:
    inbox, port = smtp_inbox
    home_a, home_b = sender.home.data.parent, tmp_path / "home-b"
    configured = vml(
        home_a, "config", "mail", "--host", "127.0.0.1", "--port", str(port), "--security", "none",
        "--sender", "alice@example.org",
    )  # fmt: skip
    assert configured.returncode == 0, configured.stderr
    sent = vml(home_a, "state", "send", "s2", "-p", "analysis", "--to", "bob@example.org")
    assert sent.returncode == 0, sent.stderr
    assert "mailed state" in sent.stderr and len(inbox.messages) == 1

    message = email.message_from_bytes(inbox.messages[0], policy=email.policy.default)
    assert message["To"] == "bob@example.org" and message["From"] == "alice@example.org"
    (attachment,) = list(message.iter_attachments())
    saved = tmp_path / "inbox" / attachment.get_filename()
    saved.parent.mkdir()
    saved.write_bytes(attachment.get_content())

    shown = vml(home_b, "state", "inspect", str(saved))
    assert shown.returncode == 0 and "signed by alice@example.org (unknown key" in shown.stdout
    imported = vml(home_b, "state", "import", str(saved), "--trust", "--remember-signer", "--json")
    assert imported.returncode == 0, imported.stderr
    data = json.loads(imported.stdout)
    receiver = context_at(home_b)
    s2 = next(s for s in app_states.states("analysis", ctx=sender)[1].values() if s.name == "s2")
    assert data["state"] == s2.id and data["signer"] == "alice@example.org"
    assert _same(receiver, data["project"], s2.id, sender, s2.id)
    assert "accepted the key of alice@example.org" in imported.stderr

    # over the configured limit: refused before connecting, the bundle kept, and the way out said
    assert vml(home_a, "config", "mail", "--size-limit", "0.001").returncode == 0
    refused = vml(home_a, "state", "send", "s2", "-p", "analysis", "--to", "bob@example.org")
    assert refused.returncode != 0 and "over the 0 MB mail limit" in refused.stderr
    assert "it was kept at" in refused.stderr and "--since" in refused.stderr
    assert len(inbox.messages) == 1
