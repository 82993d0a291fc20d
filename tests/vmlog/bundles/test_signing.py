"""Signed bundles: the importer learns who signed, whether the key is known, and spots tampering."""

from __future__ import annotations

import stat
from pathlib import Path

from bundle_fixtures import Chain, write_bundle

from vmlog.bundles import BundleReader, KnownSigners, SigningKey


def test_unsigned_bundle_reports_no_signer(chain: Chain, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "u.vmlstate")
    assert BundleReader(bundle).verify().signer is None


def test_signer_is_unknown_until_added_then_known(chain: Chain, signing_key: SigningKey, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "s.vmlstate", signing_key=signing_key)
    known = KnownSigners(tmp_path / "bob-config")
    signer = BundleReader(bundle, known_signers=known).verify().signer
    assert signer is not None
    assert (signer.name, signer.known) == ("Alice <alice@example.org>", False)
    assert signer.fingerprint == signing_key.fingerprint

    known.add("Alice (lab)", signer.public_key)
    again = BundleReader(bundle, known_signers=known).verify().signer
    assert again is not None and again.known and again.known_as == "Alice (lab)"


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = SigningKey.load_or_create(tmp_path / "cfg", "A")
    second = SigningKey.load_or_create(tmp_path / "cfg", "A")
    assert first.fingerprint == second.fingerprint
    key_file = tmp_path / "cfg" / "keys" / "signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_verify_writes_nothing(chain: Chain, signing_key: SigningKey, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "s.vmlstate", signing_key=signing_key)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    verified = BundleReader(bundle).verify()
    assert verified.labels == ["system"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_own_key_is_a_known_signer_of_its_home(chain: Chain, signing_key: SigningKey, tmp_path: Path) -> None:
    """A bundle exported from a home imports into that home without --trust; nothing is written to say so."""
    from vmlog.bundles.signing import OWN_KEY_NAME

    bundle = write_bundle(chain, tmp_path / "s.vmlstate", signing_key=signing_key)
    home = KnownSigners(tmp_path / "alice-config")
    signer = BundleReader(bundle, known_signers=home).verify().signer
    assert signer is not None and signer.known and signer.known_as == OWN_KEY_NAME
    assert not home.path.exists()
    other = KnownSigners(tmp_path / "bob-config")
    SigningKey.load_or_create(tmp_path / "bob-config", "Bob")
    assert BundleReader(bundle, known_signers=other).verify().signer.known is False
