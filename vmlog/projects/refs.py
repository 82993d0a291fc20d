"""State references: an id, a unique id prefix, a state name, ``HEAD`` (the current state), ``REF~N``."""

from __future__ import annotations

import re

from vmlog.errors import InvalidInput, NotFound
from vmlog.projects.model import State

_ANCESTOR = re.compile(r"^(?P<base>.+?)~(?P<n>\d*)$")
MIN_PREFIX = 4


def resolve(states: dict[str, State], current: str | None, ref: str) -> State:
    """The state ``ref`` names; ``NotFound`` or ``InvalidInput`` (ambiguous) with the fix."""
    ref = ref.strip()
    match = _ANCESTOR.match(ref)
    if match:
        state = resolve(states, current, match.group("base"))
        steps = int(match.group("n") or "1")
        for _ in range(steps):
            if state.parent is None:
                raise NotFound(
                    f"{ref}: {match.group('base')} has fewer than {steps} ancestors",
                    fix="see the tree with `vml state tree`",
                )
            state = states[state.parent]
        return state
    if ref in ("HEAD", "@"):
        if current is None:
            raise NotFound(
                "the project has no saved state yet, so HEAD names nothing", fix="vml state save NAME"
            )
        return states[current]
    if ref in states:
        return states[ref]
    named = [s for s in states.values() if s.name == ref]
    if len(named) == 1:
        return named[0]
    if len(ref) >= MIN_PREFIX and re.fullmatch(r"[0-9a-f]+", ref):
        prefixed = [s for s in states.values() if s.id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            ids = ", ".join(sorted(s.id[:12] for s in prefixed))
            raise InvalidInput(
                f"state id prefix {ref!r} is ambiguous ({ids})", fix="give more digits of the id"
            )
    raise NotFound(f"no state called {ref!r}", fix="list the states with `vml state list`")


def ancestors(states: dict[str, State], state_id: str | None) -> list[str]:
    """``state_id`` and all its ancestors, nearest first."""
    chain: list[str] = []
    while state_id is not None:
        chain.append(state_id)
        state_id = states[state_id].parent
    return chain


def children(states: dict[str, State], state_id: str | None) -> list[State]:
    return sorted((s for s in states.values() if s.parent == state_id), key=lambda s: (s.created, s.id))
