"""Context templates as use cases: list, show, create, edit, remove, export, import, and fill one for a project.

Templates are files of the vmlog home (:mod:`vmlog.context.template_store`); a project made with
one keeps the context it gave (``<project>/setup/context.json``), so editing a template later never
changes an existing project's seed.
"""

from __future__ import annotations

import dataclasses
import getpass
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmlog.context.model import Context
from vmlog.context.project_setup import default_context, hostname_for
from vmlog.context.template_store import TemplateStore, read_template_file
from vmlog.context.templates import VARIABLES, ContextTemplate, check_template_name, skeleton, validate_template
from vmlog.errors import AlreadyExists, InvalidInput, NotFound, VmlogError
from vmlog.fsutil import atomic_write_text
from vmlog.workspace import Workspace, workspace

__all__ = [
    "VARIABLES",
    "FilledContext",
    "TemplateDetails",
    "TemplateSummary",
    "context_for_project",
    "export_template",
    "import_template",
    "list_templates",
    "new_template",
    "remove_template",
    "save_template_text",
    "show_template",
    "template_names",
]

_MAX_KEY_BYTES = 16 * 1024
_LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _store(ctx: Workspace | None) -> TemplateStore:
    return TemplateStore(workspace(ctx).home.config)


@dataclass(frozen=True)
class TemplateSummary:
    """One template as ``vml context list`` shows it; ``problem`` when a hand-edited file no longer parses."""

    name: str
    kind: str | None
    description: str
    builtin: bool
    variables: list[str]
    path: str | None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TemplateDetails:
    """One template in full: its summary and its text."""

    summary: TemplateSummary
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary.to_dict(), "text": self.text}


def _summary(store: TemplateStore, template: ContextTemplate) -> TemplateSummary:
    path = None if template.builtin else str(store.path(template.name))
    try:
        return TemplateSummary(
            template.name, template.kind, template.description, template.builtin, template.variables(), path
        )
    except VmlogError as exc:
        return TemplateSummary(template.name, None, "", template.builtin, [], path, problem=exc.message)


def list_templates(ctx: Workspace | None = None) -> list[TemplateSummary]:
    """Every template: the built-in ones first, then the user's."""
    store = _store(ctx)
    rows = []
    for name in store.names():
        try:
            rows.append(_summary(store, store.get(name)))
        except VmlogError as exc:  # unreadable file: listed with why, never hiding the others
            rows.append(TemplateSummary(name, None, "", False, [], str(store.path(name)), problem=exc.message))
    return rows


def template_names(ctx: Workspace | None = None) -> list[str]:
    """The names of the templates, built-in ones first (for a choice in the GUI)."""
    return _store(ctx).names()


def show_template(name: str, ctx: Workspace | None = None) -> TemplateDetails:
    store = _store(ctx)
    template = store.get(name)
    return TemplateDetails(_summary(store, template), template.text)


def new_template(
    name: str,
    *,
    kind: str = "nocloud",
    copy_from: str | None = None,
    description: str = "",
    ctx: Workspace | None = None,
) -> TemplateDetails:
    """Create template ``name``: a copy of ``copy_from`` (e.g. a built-in one), or a skeleton of ``kind``."""
    store = _store(ctx)
    check_template_name(name)
    if copy_from is not None:
        text = store.get(copy_from).text
        if description:
            raise InvalidInput("--description is for a new template, not a copy", fix="edit the copy instead")
    else:
        text = skeleton(kind, description)
    template = store.save(name, text, replace=False)
    return TemplateDetails(_summary(store, template), template.text)


def template_for_edit(name: str, ctx: Workspace | None = None) -> TemplateDetails:
    """The template a user is about to edit (``InvalidInput`` for a built-in one, with how to copy it)."""
    store = _store(ctx)
    template = store.get(name)
    store.writable_path(name)  # a built-in one is refused here, with how to copy it
    return TemplateDetails(_summary(store, template), template.text)


def save_template_text(name: str, text: str, ctx: Workspace | None = None) -> TemplateDetails:
    """Replace template ``name`` with ``text`` after checking it; on a refusal the old one stays as it was."""
    store = _store(ctx)
    store.get(name)  # NotFound before anything else
    template = store.save(name, text, replace=True)
    return TemplateDetails(_summary(store, template), template.text)


def remove_template(name: str, ctx: Workspace | None = None) -> None:
    _store(ctx).remove(name)


def export_template(name: str, target: Path, *, overwrite: bool = False, ctx: Workspace | None = None) -> Path:
    """Write template ``name`` (built-in ones too) as the file ``target``."""
    target = Path(target)
    if target.is_dir():
        target = target / f"{name}.toml"
    if target.exists() and not overwrite:
        raise AlreadyExists(f"{target} exists", fix="give another file name, or --force to overwrite it")
    atomic_write_text(target, _store(ctx).get(name).text)
    return target


def import_template(
    source: Path, *, name: str | None = None, replace: bool = False, ctx: Workspace | None = None
) -> TemplateDetails:
    """Add the template file ``source`` (named after the file unless ``name``): checked completely first.

    The file may come from anyone: it is read bounded, must be UTF-8 TOML with only known settings and
    variables and render to a valid seed; nothing is written when it is refused.
    """
    source = Path(source)
    name = name or source.name.removesuffix(".toml")
    check_template_name(name)
    text = read_template_file(source, name=name)
    validate_template(text, name=name)
    store = _store(ctx)
    template = store.save(name, text, replace=replace)
    return TemplateDetails(_summary(store, template), template.text)


@dataclass(frozen=True)
class FilledContext:
    """The context for one project, and the seed kind its template was made for (None: not from a template)."""

    context: Context
    kind: str | None
    template: str | None


def login_user() -> str:
    """The host user's login name if it is a valid guest user name, else vmlog's default user.

    ``root`` is never made in a guest: it exists there already, and cloud-init would lock it.
    """
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return Context().user
    return name if _LOGIN.match(name) and name != "root" else Context().user


def read_ssh_public_key(path: Path) -> str:
    """One OpenSSH public key line from ``path`` (a private key's ``.pub`` is read instead of the key itself)."""
    path = Path(path).expanduser()
    if path.suffix != ".pub" and path.with_name(path.name + ".pub").is_file():
        path = path.with_name(path.name + ".pub")
    try:
        data = path.read_bytes()[: _MAX_KEY_BYTES + 1]
    except FileNotFoundError:
        raise NotFound(f"SSH public key file {path} does not exist", fix="ssh-keygen -t ed25519") from None
    text = data.decode("utf-8", "replace").strip()
    if len(data) > _MAX_KEY_BYTES or "\n" in text or not text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise InvalidInput(f"{path} is not one OpenSSH public key line", fix="give the .pub file of your key")
    return text


def context_for_project(
    project: str,
    *,
    template: str | None = None,
    context_file: Path | None = None,
    user: str | None = None,
    ssh_key_file: Path | None = None,
    ctx: Workspace | None = None,
) -> FilledContext:
    """The context a new project ``project`` gets: from a template, a context file, or the default one.

    ``user`` and ``ssh_key_file`` fill ``{user}`` and ``{ssh_key}`` and, given, win over what the
    template or file says; without them ``{user}`` is the host's login name and ``{ssh_key}`` the
    user's ``~/.ssh/id_*.pub`` (empty if there is none).
    """
    if template is not None and context_file is not None:
        raise InvalidInput("give a context template or a context file, not both")
    key = read_ssh_public_key(ssh_key_file) if ssh_key_file else default_context(project).ssh_public_key
    kind = None
    if template is not None:
        found = _store(ctx).get(template)
        values = {"project": project, "hostname": hostname_for(project), "user": user or login_user(),
                  "ssh_key": key or ""}  # fmt: skip
        context, kind = found.fill(values), found.kind
    elif context_file is not None:
        context = Context.load(context_file)
    else:
        context = default_context(project)
    overrides: dict[str, Any] = {}
    if user:
        overrides["user"] = user
    if ssh_key_file:
        overrides["ssh_public_key"] = key
    return FilledContext(dataclasses.replace(context, **overrides) if overrides else context, kind, template)
