"""Context templates: named, reusable contexts with ``{project}``, ``{user}``, ``{ssh_key}`` filled in at use.

A template is a small TOML text: ``kind`` (``nocloud`` or ``cernvm``, the seed it is made for), a
``description``, and the settings of a :class:`~vmlog.context.model.Context` whose strings may name
variables in braces (``{{`` and ``}}`` write a literal brace, as in Python's ``str.format``). The text
is kept as the user wrote it, comments included; it is parsed again at every use.

A template may come from someone else (``vml context import``), so it is read as hostile input:
bounded size, only known settings, none that reads a host file (``ssh_public_key_file``, a file
``source``), only known variables, and it must render to a seed cloud-init and CernVM accept.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from typing import Any

from vmlog.context.model import Context
from vmlog.context.userdata import render_cernvm, render_nocloud
from vmlog.errors import InvalidInput

TEMPLATE_KINDS = ("nocloud", "cernvm")
MAX_TEMPLATE_BYTES = 64 * 1024
VARIABLES = {
    "project": "the project's name",
    "hostname": "the project's name as a valid hostname",
    "user": "the user name given at use (--user), else the host's login name",
    "ssh_key": "the SSH public key given at use (--ssh-key), else ~/.ssh/id_*.pub; empty if none",
}
CONTEXT_SETTINGS = (
    "user", "ssh_public_key", "hostname", "cvmfs_repositories", "cvmfs_http_proxy", "extra_user_data",
    "extra_files", "instance_id",
)  # fmt: skip
TEMPLATE_SETTINGS = ("kind", "description", *CONTEXT_SETTINGS)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FILE_KEYS = frozenset({"path", "content", "permissions"})
SAMPLE_VALUES = {
    "project": "example",
    "hostname": "example",
    "user": "vmlog",
    "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnlyForValidation user@host",
}


def check_template_name(name: str) -> str:
    """``name`` if it can name a template (and its file): lower-case letters, digits, '.', '_', '-'."""
    if not _NAME.match(name) or name.endswith((".", ".toml")):
        raise InvalidInput(
            f"invalid context template name {name!r}",
            fix="use lower-case letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class ContextTemplate:
    """One template: its name, where it came from, and its text (the source of truth)."""

    name: str
    text: str
    builtin: bool = False

    @property
    def settings(self) -> dict[str, Any]:
        return parse_template(self.text, name=self.name)

    @property
    def kind(self) -> str:
        return str(self.settings["kind"])

    @property
    def description(self) -> str:
        return str(self.settings.get("description", ""))

    def variables(self) -> list[str]:
        """The variables the template uses, sorted."""
        return sorted(_variables_in(self.settings))

    def fill(self, values: dict[str, str]) -> Context:
        """The context this template gives with ``values`` for its variables."""
        return fill_template(self.settings, values, name=self.name)


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    """(where, text) for every string inside ``value`` (mapping values and list items, recursively)."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _strings(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in _strings(item, f"{where}[{i}]")]
    return []


def _fields(text: str, where: str) -> set[str]:
    """The variable names ``text`` uses; a malformed brace or a field with a format spec is an error."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidInput(
            f"{where}: {exc} in {text[:60]!r}", fix="write a literal brace as {{ or }}; variables as {project}"
        ) from None
    names = set()
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
            raise InvalidInput(
                f"{where}: {{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
                " is not a plain variable",
                fix="write a variable as {project}, a literal brace as {{ or }}",
            )
        names.add(field)
    return names


def _variables_in(settings: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for key, value in settings.items():
        if key in ("kind", "description"):
            continue
        for where, text in _strings(value, key):
            found |= _fields(text, where)
    return found


def _check_types(settings: dict[str, Any]) -> None:
    """Each setting has the type a Context needs, and nothing reads a file of the host."""
    for key in ("kind", "description", "user", "ssh_public_key", "hostname", "cvmfs_http_proxy", "instance_id"):
        if key in settings and not isinstance(settings[key], str):
            raise InvalidInput(f"template setting {key!r} must be a string")
    if settings["kind"] not in TEMPLATE_KINDS:
        raise InvalidInput(f"template kind {settings['kind']!r} is unknown", fix=f"use {' or '.join(TEMPLATE_KINDS)}")
    repos = settings.get("cvmfs_repositories", [])
    if not isinstance(repos, list) or not all(isinstance(r, str) for r in repos):
        raise InvalidInput("template setting 'cvmfs_repositories' must be a list of strings")
    extra = settings.get("extra_user_data")
    if extra is not None and not isinstance(extra, str | dict):
        raise InvalidInput("template setting 'extra_user_data' must be a string (a user-data part) or a table")
    files = settings.get("extra_files", [])
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise InvalidInput("template setting 'extra_files' must be a list of tables ([[extra_files]])")
    for item in files:
        unknown = sorted(set(item) - _FILE_KEYS)
        if unknown:
            raise InvalidInput(
                f"extra_files: unknown keys {', '.join(unknown)}",
                fix="a template holds file contents (content = ...), never a host path to read (source)",
            )
        if not all(isinstance(item.get(k, ""), str) for k in _FILE_KEYS) or "path" not in item:
            raise InvalidInput("extra_files: each needs a path and a content, as strings")


def parse_template(text: str, *, name: str = "template") -> dict[str, Any]:
    """The settings of a template text, checked: size, TOML, known settings and types, known variables."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEMPLATE_BYTES:
        raise InvalidInput(
            f"context template {name} is {size} bytes, over the {MAX_TEMPLATE_BYTES}-byte limit",
            fix="keep large files out of the context (fetch them at boot or put them on a shared folder)",
        )
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"context template {name} is not valid TOML: {exc}") from None
    unknown = sorted(set(settings) - set(TEMPLATE_SETTINGS))
    if unknown:
        raise InvalidInput(
            f"context template {name}: unknown settings {', '.join(unknown)}",
            fix=f"use only: {', '.join(TEMPLATE_SETTINGS)} (a template never reads files of the host)",
        )
    if "kind" not in settings:
        raise InvalidInput(f"context template {name} has no kind", fix=f'add kind = "{TEMPLATE_KINDS[0]}" (or cernvm)')
    _check_types(settings)
    unknown_vars = sorted(_variables_in(settings) - set(VARIABLES))
    if unknown_vars:
        raise InvalidInput(
            f"context template {name} uses unknown variables: {', '.join('{' + v + '}' for v in unknown_vars)}",
            fix=f"use only {', '.join('{' + v + '}' for v in VARIABLES)}; write a literal brace as {{{{ or }}}}",
        )
    return settings


def _filled(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(values)
    if isinstance(value, dict):
        return {key: _filled(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, values) for item in value]
    return value


def fill_template(settings: dict[str, Any], values: dict[str, str], *, name: str = "template") -> Context:
    """The Context of checked ``settings`` with ``values`` filled in; an empty SSH key means none."""
    missing = sorted(_variables_in(settings) - set(values))
    if missing:
        raise InvalidInput(f"context template {name}: no value for {', '.join('{' + v + '}' for v in missing)}")
    data = {key: _filled(value, values) for key, value in settings.items() if key in CONTEXT_SETTINGS}
    if not (data.get("ssh_public_key") or "").strip():
        data.pop("ssh_public_key", None)
    data.setdefault("hostname", values.get("hostname", "vmlog"))
    for key in ("cvmfs_http_proxy", "instance_id"):
        if data.get(key) == "":
            data.pop(key)
    try:
        return Context.from_dict(data)
    except InvalidInput as exc:
        raise InvalidInput(f"context template {name}: {exc.message}", fix=exc.fix) from None
    except TypeError as exc:  # an extra_files entry without content
        raise InvalidInput(f"context template {name}: {exc}") from None


def validate_template(text: str, *, name: str = "template") -> dict[str, Any]:
    """Check a template completely: parse it, fill it with sample values and render the seed of its kind."""
    settings = parse_template(text, name=name)
    context = fill_template(settings, SAMPLE_VALUES, name=name)
    try:
        render_cernvm(context) if settings["kind"] == "cernvm" else render_nocloud(context)
    except InvalidInput as exc:
        raise InvalidInput(f"context template {name}: {exc.message}", fix=exc.fix) from None
    return settings


def skeleton(kind: str = "nocloud", description: str = "") -> str:
    """The text of a new template: the common settings, with the variables and a comment for each."""
    if kind not in TEMPLATE_KINDS:
        raise InvalidInput(f"template kind {kind!r} is unknown", fix=f"use {' or '.join(TEMPLATE_KINDS)}")
    quoted = description.replace("\\", "\\\\").replace('"', '\\"')
    return (
        "# A vmlog context template (TOML). Variables filled at use: {project}, {hostname}, {user}, {ssh_key};\n"
        "# write a literal brace as {{ or }}. `vml context edit NAME` checks it when you save.\n"
        "# kind: the seed it is made for, nocloud (cloud-init) or cernvm (amiconfig + ucernvm + cloud-init)\n"
        f'kind = "{kind}"\n'
        f'description = "{quoted}"\n'
        'user = "{user}"\n'
        'hostname = "{hostname}"\n'
        'ssh_public_key = "{ssh_key}"\n'
        "# cvmfs_repositories = [\"sft.cern.ch\"]\n"
        '# cvmfs_http_proxy = "DIRECT"\n'
        "# [[extra_files]]\n"
        '# path = "/etc/motd"\n'
        '# content = "project {project}\\n"\n'
        "# [extra_user_data]\n"
        '# runcmd = ["echo hello > /var/tmp/hello"]\n'
    )
