"""Registry credentials and trust as the container tools keep them: auth files, credential helpers, certs.d.

Podman and skopeo read ``$REGISTRY_AUTH_FILE``, then ``${XDG_RUNTIME_DIR}/containers/auth.json``, then
``~/.config/containers/auth.json``; Docker reads ``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json``).
Each holds ``auths`` (``host -> {"auth": base64("user:password")}``), and may name a credential helper for
one host (``credHelpers``) or for all (``credsStore``): the program ``docker-credential-NAME``, which
answers ``get`` with ``{"Username", "Secret"}`` for the host written on its stdin. vmlog reads these
files and never writes them, so ``podman login`` / ``docker login`` stay the one place to log in.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmlog import safejson
from vmlog.registry.errors import RegistryAuthError

HELPER_TIMEOUT = 30.0
MAX_AUTH_FILE = 1 << 20

CERTS_D_ROOTS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or identity token) for one registry, and where they came from."""

    username: str
    password: str
    source: str  # "--username", "the keyring", an auth file's path, or "docker-credential-NAME"

    def __repr__(self) -> str:  # never the password in a traceback or a log
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def auth_files(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """The auth files in the order the container tools consult them (only those that exist)."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    candidates: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        candidates.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    candidates.append(config / "containers" / "auth.json")
    docker = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    candidates.append(docker / "config.json")
    return [p for p in dict.fromkeys(candidates) if p.is_file()]


def _host_keys(host: str) -> list[str]:
    """How a host may be spelt in ``auths``: bare, with a scheme, with ``/v1/`` or ``/v2/`` (Docker's legacy)."""
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v2/", f"https://{host}/v1/"]


def _from_auth_entry(entry: object, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("auth")
    if isinstance(token, str) and token:
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryAuthError(
                f"the `auth` entry in {source} is not base64 of user:password",
                fix="log in again with `podman login HOST` or `docker login HOST`",
            ) from None
        if sep:
            return Credentials(user, password, source)
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        return Credentials("<token>", entry["identitytoken"], source)
    return None


def run_helper(name: str, host: str) -> Credentials | None:
    """``docker-credential-NAME get`` for ``host``; None when the helper has nothing for it."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise RegistryAuthError(f"the credential helper name {name!r} is not a program name")
    program = f"docker-credential-{name}"
    if shutil.which(program) is None:
        raise RegistryAuthError(
            f"the auth file names the credential helper {program}, which is not installed",
            fix=f"install {program}, or log in with `podman login {host}` (or pass --username)",
        )
    try:
        done = subprocess.run([program, "get"], input=host, capture_output=True, text=True,
                              timeout=HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise RegistryAuthError(f"{program} did not answer within {HELPER_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        raise RegistryAuthError(
            f"{program} get failed: {(done.stderr or done.stdout).strip()[:200]}",
            fix=f"log in again with `docker login {host}`",
        )
    try:
        answer = safejson.loads(done.stdout, what=f"{program}'s answer", max_bytes=64 << 10)
        user, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise RegistryAuthError(f"{program} answered something other than {{Username, Secret}}") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise RegistryAuthError(f"{program} answered something other than {{Username, Secret}}")
    return Credentials(user, secret, program)


def stored_credentials(host: str, files: Sequence[Path] | None = None) -> Credentials | None:
    """The first credentials the auth files give for ``host``: per-host helper, inline ``auth``, ``credsStore``."""
    for path in auth_files() if files is None else files:
        try:
            raw = path.read_bytes()
            doc = safejson.loads(raw, what=str(path), max_bytes=MAX_AUTH_FILE)
        except (OSError, ValueError) as exc:
            raise RegistryAuthError(f"cannot read the auth file {path}: {exc}",
                                    fix=f"repair or remove {path}, then log in again") from None
        if not isinstance(doc, dict):
            continue
        helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
        for key in _host_keys(host):
            if isinstance(helpers.get(key), str):
                found = run_helper(helpers[key], host)
                if found:
                    return found
        auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
        for key in _host_keys(host):
            found = _from_auth_entry(auths.get(key), str(path))
            if found:
                return found
        if isinstance(doc.get("credsStore"), str) and doc["credsStore"]:
            found = run_helper(doc["credsStore"], host)
            if found:
                return found
    return None


KEYRING_SERVICE = "vmlog-registry"


def _keyring():  # type: ignore[no-untyped-def]
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None, Exception
    return keyring, KeyringError


def keyring_password(host: str, username: str) -> str | None:
    """The password ``--remember-password`` put in the system keyring for ``username`` at ``host``, if any."""
    keyring, failure = _keyring()
    if keyring is None:
        return None
    try:
        return keyring.get_password(f"{KEYRING_SERVICE}:{host}", username)
    except failure:
        return None


def store_in_keyring(host: str, username: str, password: str) -> None:
    """Keep the password in the system keyring (service ``vmlog-registry:HOST``), or say why it cannot be."""
    keyring, failure = _keyring()
    if keyring is None:
        raise RegistryAuthError("the keyring package is not installed, so the password cannot be kept",
                                fix=f"pip install keyring, or log in with `podman login {host}`")
    try:
        keyring.set_password(f"{KEYRING_SERVICE}:{host}", username, password)
    except failure as exc:
        raise RegistryAuthError(f"no usable system keyring: {exc}",
                                fix=f"unlock your keyring, or log in with `podman login {host}`") from None


def ca_file_for(host: str, roots: Sequence[Path] | None = None) -> Path | None:
    """A private CA for ``host`` by the containers convention: ``certs.d/HOST[:PORT]/ca.crt`` (or any ``*.crt``)."""
    if roots is None:
        config = Path(os.environ["XDG_CONFIG_HOME"]) if os.environ.get("XDG_CONFIG_HOME") else Path.home() / ".config"
        roots = (config / "containers" / "certs.d", *CERTS_D_ROOTS)
    for root in roots:
        folder = root / host
        if (folder / "ca.crt").is_file():
            return folder / "ca.crt"
        if folder.is_dir():
            crts = sorted(p for p in folder.glob("*.crt") if p.is_file())
            if crts:
                return crts[0]
    return None


def wrong_credentials(host: str, creds: Credentials | None, status: int) -> RegistryAuthError:
    """The error for a 401/403 that names who was refused and how to fix it."""
    if creds is None:
        return RegistryAuthError(
            f"{host} wants credentials and none were found (no auth file entry, no --username)",
            fix=f"log in with `podman login {host}` or `docker login {host}`, or pass --username NAME"
            " --password-stdin",
        )
    verb = "refused" if status == 401 else "does not allow this for"
    return RegistryAuthError(
        f"{host} {verb} the credentials of {creds.username!r} (from {creds.source}; HTTP {status})",
        fix=f"check the user name and password, log in again with `podman login {host}`, or pass --username NAME"
        " --password-stdin",
    )


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` as (scheme, params)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in re.finditer(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))', rest)}
    return scheme.lower(), params


def password_from_stdin(text: str) -> str:
    """The password as ``--password-stdin`` reads it: everything, one trailing newline dropped."""
    return text[:-1] if text.endswith("\n") else text


def decode_json_auth(data: bytes) -> dict[str, object]:
    """A token endpoint's answer, bounded (untrusted input)."""
    doc = safejson.loads(data, what="the registry's token answer", max_bytes=1 << 20)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    return doc


__all__ = [
    "Credentials", "auth_files", "ca_file_for", "decode_json_auth", "parse_challenge",
    "keyring_password", "password_from_stdin", "run_helper", "store_in_keyring", "stored_credentials",
    "wrong_credentials",
]
