"""Registry references as the container tools write them: ``host[:port]/repo[:tag|@digest]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmlog.errors import InvalidInput

# The distribution spec's grammar for repository names, tags and digests.
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")

_EXAMPLE = "registry.example.org:5000/group/states:after-calibration"


@dataclass(frozen=True)
class Reference:
    """One repository on one registry, and optionally a tag or a digest in it."""

    host: str  # host[:port], as the auth file and certs.d name it
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def target(self) -> str | None:
        """What goes after ``/manifests/``: the digest if there is one, else the tag."""
        return self.digest or self.tag

    @property
    def repo_ref(self) -> str:
        return f"{self.host}/{self.repository}"

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.host, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.host, self.repository, None, digest)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.repo_ref}@{self.digest}"
        return f"{self.repo_ref}:{self.tag}" if self.tag else self.repo_ref


def check_digest(text: str, what: str = "digest") -> str:
    """``sha256:<64 hex>`` or ``InvalidInput`` (the only algorithm vmlog writes or accepts)."""
    if not isinstance(text, str) or not _DIGEST.match(text):
        raise InvalidInput(f"the {what} {str(text)[:80]!r} is not sha256:<64 lowercase hex digits>")
    return text


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise InvalidInput(
            f"{tag!r} is not a tag a registry accepts (letters, digits, '_', '.', '-'; at most 128)",
            fix="choose a tag such as after-calibration or v1",
        )
    return tag


def parse_reference(text: str, *, need_target: bool = False) -> Reference:
    """Parse ``host[:port]/repo[:tag|@digest]``; the host part is required (there is no default registry)."""
    text = text.strip()
    if text.startswith(("http://", "https://", "oci://")):
        text = text.split("://", 1)[1]
    digest = None
    if "@" in text:
        text, digest = text.rsplit("@", 1)
        check_digest(digest)
    host, sep, rest = text.partition("/")
    if not sep or not rest or not _HOST.match(host) or ("." not in host and ":" not in host and host != "localhost"):
        raise InvalidInput(
            f"{text!r} does not name a registry host and a repository",
            fix=f"write the reference as HOST[:PORT]/REPOSITORY[:TAG], e.g. {_EXAMPLE}",
        )
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        check_tag(tag)
    if not _REPO.match(rest) or len(rest) > 255:
        raise InvalidInput(
            f"{rest!r} is not a repository name (lowercase letters, digits, '.', '_', '-', '/')",
            fix=f"write the reference as HOST[:PORT]/REPOSITORY[:TAG], e.g. {_EXAMPLE}",
        )
    if need_target and tag is None and digest is None:
        raise InvalidInput(
            f"{text!r} names a repository but no state in it",
            fix="add :TAG or @sha256:DIGEST; `vml state list --remote REPO` lists the tags",
        )
    return Reference(host, rest, tag, digest)
