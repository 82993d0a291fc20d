"""Builds small CernVM-FS-format repositories and HTTP release trees on disk, and serves them on 127.0.0.1.

Written from the published CernVM-FS format and checked against repositories ``cvmfs_server`` wrote
(tests/fixtures/real/cvmfs): signed ``.cvmfspublished`` and ``.cvmfswhitelist`` (hashes and
fingerprints in the repository's algorithm: sha1, rmd160 or shake128), zlib-compressed
content-addressed objects under ``data/XX/``, SQLite catalogs keyed by MD5 path pairs (schema 2.5
with ``mtimens``; links flagged FILE|LINK, special files FILE|SPECIAL, hidden entries, bind
mountpoints, external files), nested catalogs, chunked files, and a tag history database with its
``properties`` table. It makes its own master key and repository certificate, so tests can also
produce what a broken or hostile server would serve.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from vmlog.releases.content_hash import ALGORITHMS, ContentHash, md5_path_pair
from vmlog.releases.signed_letter import certificate_fingerprint

FLAG_DIR, FLAG_MOUNTPOINT, FLAG_FILE, FLAG_LINK, FLAG_NESTED_ROOT, FLAG_CHUNKED = 1, 2, 4, 8, 32, 64
FLAG_SPECIAL, FLAG_EXTERNAL, FLAG_BIND_MOUNTPOINT, FLAG_HIDDEN = 16, 128, 0x4000, 0x8000

_SCHEMA = """
CREATE TABLE catalog (md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER,
  hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER, mtimens INTEGER, flags INTEGER,
  name TEXT, symlink TEXT, uid INTEGER, gid INTEGER, xattr BLOB,
  CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2));
CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2);
CREATE TABLE chunks (md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER, hash BLOB,
  CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size));
CREATE TABLE nested_catalogs (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_nested PRIMARY KEY (path));
CREATE TABLE bind_mountpoints (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path));
CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));
CREATE TABLE statistics (counter TEXT, value INTEGER, CONSTRAINT pk_statistics PRIMARY KEY (counter));
"""
_STAMP = "%Y%m%d%H%M%S"


def raw_rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """PKCS#1 v1.5 type-1 block around ``message`` (no DigestInfo), raised to the private exponent."""
    numbers = key.private_numbers()
    size = (numbers.public_numbers.n.bit_length() + 7) // 8
    block = b"\x00\x01" + b"\xff" * (size - len(message) - 3) + b"\x00" + message
    value = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n)
    return value.to_bytes(size, "big")


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


@dataclass
class _Node:
    kind: str  # "dir", "file", "link", "special"
    mode: int = 0o755
    data: bytes = b""
    target: str = ""
    chunk_size: int = 0
    flags: int = 0  # FLAG_HIDDEN, FLAG_EXTERNAL, FLAG_BIND_MOUNTPOINT
    rdev: int = 0


@dataclass
class CvmfsRepoBuilder:
    """A repository ``name`` published under ``webroot/cvmfs/<name>``."""

    webroot: Path
    name: str = "sw.example.org"
    mtime: int = 1_700_000_000
    mtime_ns: int = 250_000_000
    algorithm: str = "sha1"
    nodes: dict[str, _Node] = field(default_factory=dict)
    nested: set[str] = field(default_factory=set)
    tags: list[tuple[str, str, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.webroot = Path(self.webroot)
        self.root = self.webroot / "cvmfs" / self.name
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.master_key = new_key()
        self.repo_key = new_key()
        self.certificate = self_signed(self.repo_key, self.name)
        self.nodes[""] = _Node("dir")
        self.object_of: dict[str, list[str]] = {}  # file path -> object paths (relative to root)

    @property
    def url(self) -> str:
        raise AttributeError("use server.url + '/cvmfs/' + builder.name")

    def master_public_pem(self) -> str:
        return (
            self.master_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    # -- content -------------------------------------------------------------------------------
    def _parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.nodes.setdefault("/" + "/".join(parts[:i]), _Node("dir"))

    def add_dir(self, path: str, *, nested: bool = False) -> None:
        path = "/" + path.strip("/")
        self._parents(path)
        self.nodes.setdefault(path, _Node("dir"))
        if nested:
            self.nested.add(path)

    def add_file(
        self, path: str, data: bytes, *, mode: int = 0o644, chunk_size: int = 0, hidden: bool = False,
        external: bool = False,
    ) -> None:
        path = "/" + path.strip("/")
        self._parents(path)
        flags = (FLAG_HIDDEN if hidden else 0) | (FLAG_EXTERNAL if external else 0)
        self.nodes[path] = _Node("file", mode, data, chunk_size=chunk_size, flags=flags)

    def add_special(self, path: str, st_mode: int, rdev: int = 0) -> None:
        """A fifo, socket or device (``st_mode`` with its type bits); cvmfs keeps a device's number in size."""
        path = "/" + path.strip("/")
        self._parents(path)
        self.nodes[path] = _Node("special", st_mode, rdev=rdev)

    def add_bind_mountpoint(self, path: str) -> None:
        path = "/" + path.strip("/")
        self._parents(path)
        self.nodes[path] = _Node("dir", flags=FLAG_BIND_MOUNTPOINT)

    def add_link(self, path: str, target: str) -> None:
        path = "/" + path.strip("/")
        self._parents(path)
        self.nodes[path] = _Node("link", 0o777, target=target)

    # -- objects ---------------------------------------------------------------------------------
    def put_object(self, plain: bytes, suffix: str = "", *, compress: bool = True) -> str:
        """Store an object; return its hash text in the repository's algorithm (``hex`` or ``hex-rmd160``)."""
        stored = zlib.compress(plain) if compress else plain
        digest = ContentHash.of(stored, self.algorithm).hex
        path = self.root / "data" / digest[:2] / (digest[2:] + suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(stored)
        return digest

    def _raw(self, text: str) -> bytes:
        """The digest bytes of a hash text (catalog rows store them raw, the algorithm in the flags)."""
        return ContentHash.parse(text).digest

    def _hash_flags(self) -> int:
        return ALGORITHMS[self.algorithm][0] << 8

    def _printed(self, text: bytes) -> bytes:
        return ContentHash.of(text, self.algorithm).hex.encode("ascii")

    def object_path(self, digest: str, suffix: str = "") -> Path:
        return self.root / "data" / digest[:2] / (digest[2:] + suffix)

    # -- catalogs -------------------------------------------------------------------------------
    def _catalog_of(self, path: str) -> str:
        """The mountpoint of the catalog holding ``path`` (its deepest nested ancestor-or-self)."""
        best = ""
        for mountpoint in self.nested:
            if (path == mountpoint or path.startswith(mountpoint + "/")) and len(mountpoint) > len(best):
                best = mountpoint
        return best

    def _row(self, db: sqlite3.Connection, path: str, node: _Node, flags_extra: int = 0) -> None:
        """One catalog row, flagged as cvmfs_server's SqlDirent::CreateDatabaseFlags does."""
        md5_1, md5_2 = md5_path_pair(path)
        parent = path.rsplit("/", 1)[0] if path else None
        parent_1, parent_2 = md5_path_pair(parent) if parent is not None else (0, 0)
        name = path.rsplit("/", 1)[-1]
        digest: bytes | None = None
        size = 0
        if node.kind == "dir":
            flags, mode = FLAG_DIR | flags_extra | node.flags, 0o040000 | node.mode
            size = 4096
        elif node.kind == "link":
            flags, mode = FLAG_FILE | FLAG_LINK, 0o120777
            size = len(node.target)
        elif node.kind == "special":
            flags, mode, size = FLAG_FILE | FLAG_SPECIAL, node.mode, node.rdev
        else:
            flags, mode = FLAG_FILE | node.flags | self._hash_flags(), 0o100000 | node.mode
            size = len(node.data)
            if node.flags & FLAG_EXTERNAL:  # external data: the hash of the plain file, nothing in data/
                digest = ContentHash.of(node.data, self.algorithm).digest
            elif node.chunk_size and size > node.chunk_size:
                flags |= FLAG_CHUNKED
                objects = []
                for offset in range(0, size, node.chunk_size):
                    piece = node.data[offset : offset + node.chunk_size]
                    chunk = self.put_object(piece, "P")
                    objects.append(str(self.object_path(chunk, "P").relative_to(self.root)))
                    db.execute(
                        "INSERT INTO chunks VALUES (?,?,?,?,?)", (md5_1, md5_2, offset, len(piece), self._raw(chunk))
                    )
                digest = ContentHash.of(zlib.compress(node.data), self.algorithm).digest  # bulk hash, never fetched
                self.object_of[path] = objects
            else:
                text = self.put_object(node.data)
                digest = self._raw(text)
                self.object_of[path] = [str(self.object_path(text).relative_to(self.root))]
        db.execute(
            "INSERT INTO catalog VALUES (?,?,?,?,1,?,?,?,?,?,?,?,?,0,0,NULL)",
            (md5_1, md5_2, parent_1, parent_2, digest, size, mode, self.mtime, self.mtime_ns, flags, name,
             node.target or None),
        )

    def _build_catalog(self, mountpoint: str, hashes_of: dict[str, tuple[str, int]], revision: int) -> tuple[str, int]:
        with tempfile.TemporaryDirectory() as tmp:
            db_path = Path(tmp) / "catalog.db"
            db = sqlite3.connect(db_path)
            db.executescript(_SCHEMA)
            for path, node in sorted(self.nodes.items()):
                if self._catalog_of(path) == mountpoint:
                    extra = FLAG_NESTED_ROOT if (path == mountpoint and mountpoint) else 0
                    self._row(db, path, node, extra)
                elif path in self.nested and self._catalog_of(path.rsplit("/", 1)[0]) == mountpoint:
                    self._row(db, path, node, FLAG_MOUNTPOINT)
                    text, size = hashes_of[path]
                    db.execute("INSERT INTO nested_catalogs VALUES (?,?,?)", (path, text, size))
            props = {
                "revision": str(revision),
                "schema": "2.5",
                "schema_revision": "7",
                "root_prefix": mountpoint or "/",
            }
            db.executemany("INSERT INTO properties VALUES (?,?)", list(props.items()))
            db.commit()
            db.close()
            data = db_path.read_bytes()
        return self.put_object(data, "C"), len(data)

    def build_catalogs(self, revision: int) -> str:
        hashes_of: dict[str, tuple[str, int]] = {}
        for mountpoint in sorted(self.nested, key=lambda p: -p.count("/")):
            hashes_of[mountpoint] = self._build_catalog(mountpoint, hashes_of, revision)
        return self._build_catalog("", hashes_of, revision)[0]

    # -- signing ---------------------------------------------------------------------------------
    def _history(self) -> str:
        """The tag database as cvmfs_server writes it (schema 1.0 revision 3: properties, tags, recycle_bin)."""
        with tempfile.TemporaryDirectory() as tmp:
            db_path = Path(tmp) / "history.db"
            db = sqlite3.connect(db_path)
            db.executescript(
                "CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));"
                "CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER, timestamp INTEGER, channel INTEGER,"
                " description TEXT, size INTEGER, branch TEXT, CONSTRAINT pk_tags PRIMARY KEY (name));"
                "CREATE TABLE recycle_bin (hash TEXT, flags INTEGER, CONSTRAINT pk_hash PRIMARY KEY (hash));"
            )
            db.executemany(
                "INSERT INTO properties VALUES (?,?)",
                [("schema", "1.0"), ("schema_revision", "3"), ("fqrn", self.name), ("previous_revision", "0" * 40)],
            )
            db.executemany("INSERT INTO tags VALUES (?,?,?,?,0,'',0,'')", self.tags)
            db.commit()
            db.close()
            return self.put_object(db_path.read_bytes(), "H")

    def publish(self, revision: int, tag: str | None = None, *, timestamp: int | None = None) -> str:
        """Write catalogs, history, certificate, manifest and whitelist; return the root catalog hash."""
        timestamp = timestamp or int(dt.datetime.now(dt.UTC).timestamp())
        root = self.build_catalogs(revision)
        self.tags = [t for t in self.tags if t[0] != (tag or f"generic-{revision}")]
        self.tags.append((tag or f"generic-{revision}", root, revision, timestamp))
        history = self._history()
        cert_pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        cert = self.put_object(cert_pem, "X")
        text = (
            f"C{root}\nB4096\nRd41d8cd98f00b204e9800998ecf8427e\nD240\nS{revision}\nGno\nAno\n"
            f"N{self.name}\nX{cert}\nH{history}\nT{timestamp}\n"
        ).encode("ascii")
        self.write_manifest(text)
        self.write_whitelist()
        return root

    def write_manifest(self, text: bytes, *, signing_key: rsa.RSAPrivateKey | None = None) -> None:
        printed = self._printed(text)
        signature = (signing_key or self.repo_key).sign(printed, padding.PKCS1v15(), hashes.SHA1())
        (self.root / ".cvmfspublished").write_bytes(text + b"--\n" + printed + b"\n" + signature)

    def fingerprint(self) -> str:
        """The certificate's fingerprint in the repository's algorithm, as cvmfs_server prints it."""
        return certificate_fingerprint(self.certificate, self.algorithm)

    def write_whitelist(
        self, *, expires: dt.datetime | None = None, repository: str | None = None, name_line: bool = True
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        expires = expires or now + dt.timedelta(days=30)
        name = f"N{repository or self.name}\n" if name_line else ""
        text = f"{now:{_STAMP}}\nE{expires:{_STAMP}}\n{name}{self.fingerprint()}\n".encode("ascii")
        printed = self._printed(text)
        (self.root / ".cvmfswhitelist").write_bytes(
            text + b"--\n" + printed + b"\n" + raw_rsa_sign(self.master_key, printed)
        )

    def tamper(self, path: str, data: bytes) -> None:
        """Replace the stored objects of file ``path`` with other (validly compressed) content."""
        for relative in self.object_of["/" + path.strip("/")]:
            (self.root / relative).write_bytes(zlib.compress(data))


@dataclass
class HttpTreeBuilder:
    """A release tree under ``webroot`` with its ``.vmlcatalog`` (GROW-FS style)."""

    webroot: Path
    mtime: int = 1_700_000_000
    entries: dict[str, _Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.webroot = Path(self.webroot)
        self.webroot.mkdir(parents=True, exist_ok=True)

    def add_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.entries.setdefault("/".join(parts[:i]), _Node("dir"))
        self.entries[path] = _Node("file", mode, data)

    def add_link(self, path: str, target: str) -> None:
        self.entries[path.strip("/")] = _Node("link", 0o777, target=target)

    def publish(self, revision: int, tag: str = "") -> str:
        lines = ["# vmlog release tree 1", f"# revision: {revision}", f"# tag: {tag}"]
        for path, node in sorted(self.entries.items()):
            target = self.webroot / path
            if node.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                lines.append(f"D\t{node.mode:o}\t0\t-\t{self.mtime}\t{path}")
            elif node.kind == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(node.data)
                digest = hashlib.sha256(node.data).hexdigest()
                lines.append(f"F\t{node.mode:o}\t{len(node.data)}\t{digest}\t{self.mtime}\t{path}")
            else:
                lines.append(f"L\t777\t{len(node.target)}\t-\t{self.mtime}\t{path}\t{node.target}")
        data = ("\n".join(lines) + "\n").encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        (self.webroot / ".vmlcatalog").write_bytes(data)
        (self.webroot / ".vmlcatalog.sha256").write_text(digest + "\n")
        (self.webroot / ".vmlcatalogs").mkdir(exist_ok=True)
        (self.webroot / ".vmlcatalogs" / digest).write_bytes(data)
        return digest


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class ServedDirectory:
    """A real threaded HTTP server on 127.0.0.1 serving ``directory``; stop() closes the port."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._stopped = False
        handler = partial(_QuietHandler, directory=str(directory))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="release-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def tree_bytes(directory: Path) -> dict[str, str]:
    """sha256 of every regular file below ``directory`` (walks a mounted release for comparisons)."""
    result = {}
    for dirpath, _, files in os.walk(directory):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                result[str(path.relative_to(directory))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


class ForwardProxy:
    """A minimal HTTP forward proxy on 127.0.0.1 that records the URLs it relayed."""

    def __init__(self) -> None:
        relayed = self.relayed = []
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                relayed.append(self.path)
                try:
                    with direct.open(self.path, timeout=10) as upstream:
                        body, status = upstream.read(), upstream.status
                except urllib.error.HTTPError as exc:
                    body, status = b"", exc.code
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# The files of the releases the tests publish (imported by conftest and tests alike).
RELEASE_FILES = {
    "24.0/24.0.1/bin/setup.sh": b"#!/bin/sh\necho release 24.0.1\n",
    "24.0/24.0.3/bin/setup.sh": b"#!/bin/sh\necho release 24.0.3\n",
    "24.0/24.0.3/lib/libphysics.so": bytes(range(256)) * 600,  # 150 KiB, chunked below
    "24.0/24.0.3/share/README": b"Physics release 24.0.3\n",
    "25.1/25.1.0/share/README": b"Physics release 25.1.0\n",
}
