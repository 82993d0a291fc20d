"""Where context templates live: one readable ``NAME.toml`` per template in the home's ``config/contexts/``.

The built-in templates (those of the CernVM catalog entry) are not files: they cannot be removed or
changed, only copied under a new name. Every write goes through :func:`validate_template` and is
atomic, so a template on disk is always one that renders.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from vmlog.appliances.builtin import CERNVM_CONTEXT_TEMPLATES
from vmlog.context.templates import MAX_TEMPLATE_BYTES, ContextTemplate, check_template_name, validate_template
from vmlog.errors import AlreadyExists, InvalidInput, NotFound
from vmlog.fsutil import atomic_write_text

CONTEXTS_DIR = "contexts"
SUFFIX = ".toml"


def read_template_file(path: Path, *, name: str = "template") -> str:
    """The text of a template file from anywhere, read as hostile input: a regular file, bounded, UTF-8."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise NotFound(f"no file {path}") from None
    except OSError as exc:
        why = "is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise InvalidInput(f"cannot read {path}: {why}", fix="give the template file itself") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would never end
            raise InvalidInput(f"{path} is not a regular file", fix="give a template file (.toml)")
        data = handle.read(MAX_TEMPLATE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_BYTES:
        raise InvalidInput(
            f"{path} is over the {MAX_TEMPLATE_BYTES}-byte limit of a context template", fix="is it a template?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start})", fix="save the template as UTF-8") from None


class TemplateStore:
    """The templates of one vmlog home: the built-in ones and the user's files."""

    def __init__(self, config_dir: Path) -> None:
        self.root = Path(config_dir) / CONTEXTS_DIR

    def path(self, name: str) -> Path:
        return self.root / f"{check_template_name(name)}{SUFFIX}"

    def names(self) -> list[str]:
        """Built-in templates first (in their order), then the user's, sorted."""
        own = sorted(p.name[: -len(SUFFIX)] for p in self.root.glob(f"*{SUFFIX}")) if self.root.is_dir() else []
        return [*CERNVM_CONTEXT_TEMPLATES, *(n for n in own if n not in CERNVM_CONTEXT_TEMPLATES)]

    def get(self, name: str) -> ContextTemplate:
        if name in CERNVM_CONTEXT_TEMPLATES:
            return ContextTemplate(name, CERNVM_CONTEXT_TEMPLATES[name], builtin=True)
        path = self.path(name)
        if not path.is_file():
            raise NotFound(f"no context template {name!r}", fix="`vml context list` shows them")
        return ContextTemplate(name, read_template_file(path, name=name))

    def writable_path(self, name: str) -> Path:
        if name in CERNVM_CONTEXT_TEMPLATES:
            raise InvalidInput(
                f"{name} is a built-in context template; it cannot be changed or removed",
                fix=f"copy it: `vml context new NAME --from {name}`",
            )
        return self.path(name)

    def save(self, name: str, text: str, *, replace: bool) -> ContextTemplate:
        """Check ``text`` completely, then write it as template ``name`` (``replace`` to overwrite one)."""
        path = self.writable_path(name)
        if not replace and path.exists():
            raise AlreadyExists(
                f"a context template {name!r} exists", fix=f"`vml context edit {name}`, or choose another name"
            )
        validate_template(text, name=name)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        return ContextTemplate(name, text)

    def remove(self, name: str) -> None:
        path = self.writable_path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(f"no context template {name!r}", fix="`vml context list` shows them") from None
