"""Who signed a bundle, and whether the user accepts it: known keys, ``--trust``, or a question answered yes."""

from __future__ import annotations

from collections.abc import Callable

from vmlog.bundles import KnownSigners, SignerInfo, VerifiedBundle
from vmlog.bundles.errors import Untrusted
from vmlog.errors import VmlogError
from vmlog.logbook.book import who
from vmlog.mail import SmtpSettings
from vmlog.workspace import Workspace


def describe_signer(signer: SignerInfo | None) -> str:
    if signer is None:
        return "unsigned"
    known = f"known key, accepted as {signer.known_as}" if signer.known else "unknown key"
    return f"signed by {signer.name} ({known}, fingerprint {signer.fingerprint})"


def check_trust(
    bundle: VerifiedBundle, *, trust: bool, confirm: Callable[[VerifiedBundle], bool] | None = None
) -> None:
    """Go on if the signer's key is known, ``trust`` is set or ``confirm`` says yes; else ``Untrusted``."""
    if bundle.signer is not None and bundle.signer.known:
        return
    if trust or (confirm is not None and confirm(bundle)):
        return
    what = "is not signed" if bundle.signer is None else f"is {describe_signer(bundle.signer)}"
    raise Untrusted(
        f"{bundle.path.name} {what}; it was not imported",
        fix=f"check with the sender (state author {bundle.state.get('author')!r}), then run"
        f" `vml state import {bundle.path} --trust`"
        + (" (add --remember-signer to accept the key from now on)" if bundle.signer is not None else ""),
    )


def remember_signer(ctx: Workspace, signer: SignerInfo) -> str:
    """Accept ``signer``'s key: its bundles import without asking from now on."""
    return KnownSigners(ctx.home.config).add(signer.name, signer.public_key)


def default_signer(ctx: Workspace) -> str:
    """The name a signature carries: the configured mail sender, else ``user@host``."""
    try:
        settings = SmtpSettings.load(ctx.home.config)
        return settings.sender or settings.user or who()
    except VmlogError:
        return who()
