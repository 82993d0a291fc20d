"""The options `vml setup` and `vml project new` share for contexts (kept light: no use-case imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ContextOption = Annotated[
    str | None,
    typer.Option("--context", help="Context template name (`vml context list`) or context file (.toml/.json)."),
]
UserOption = Annotated[str | None, typer.Option("--user", help="The guest user to make (fills {user}).")]
SshKeyOption = Annotated[
    Path | None, typer.Option("--ssh-key", help="SSH public key file to give the user (default: ~/.ssh/id_*.pub).")
]


def context_choice(value: str | None) -> tuple[str | None, Path | None]:
    """(template name, context file) a ``--context`` value names: an existing file, else a template."""
    if value is None:
        return None, None
    path = Path(value).expanduser()
    looks_like_file = path.suffix in (".toml", ".json") or "/" in value
    return (None, path) if path.is_file() or looks_like_file else (value, None)
