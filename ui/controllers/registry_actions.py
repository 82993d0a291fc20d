"""The Projects page's registry actions: push a state to an OCI registry, pull one from it.

The same :mod:`vmlog.app.registry` functions as ``vml state push|pull``; :class:`RegistryActions` is
mixed into the projects controller, whose ``run``, ``_open``, ``_label``, ``_ancestors``, ``notify``
and ``select_project`` it uses. A pull is verified before anything is written, as an imported file is;
a refusal (credentials, an unknown signer) reaches the jobs panel's failure box with its fix.
"""

from __future__ import annotations

from ui.bundle_dialogs import PullDialog, PushDialog
from ui.formatting import human_bytes
from ui.workers import Job
from vmlog.app import registry


class RegistryActions:
    """Turns "Push to registry…" and "Pull from registry…" into the registry use cases."""

    last_reference: str = ""  # the last reference pushed to or pulled from, offered again next time

    def ask_push(self, state_id: str) -> PushDialog:
        dialog = PushDialog(self.window, self._label(state_id), self._ancestors(state_id), self.last_reference)
        return self._open(dialog, lambda: self.push_state(state_id, **dialog.values()))

    def push_state(self, state_id: str, **values) -> Job:
        """``values`` are :meth:`PushDialog.values`: ``target``, ``since``, ``sign`` and ``login``."""
        self.last_reference = str(values.get("target") or "")
        return self.run(f"Pushing {self._label(state_id)}", registry.push_state, project_name=self.project,
                        ref=state_id, on_result=self._pushed, **values)

    def _pushed(self, result: registry.PushResult) -> None:
        self.last_push = result
        if result.uploaded or result.mounted:
            sent = f"sent {human_bytes(result.bytes_uploaded)}"
            if result.present:
                sent += f"; {len(result.present)} blob{'s' if len(result.present) != 1 else ''} were there already"
        else:
            sent = "the registry had all of it already: nothing was sent"
        self.notify("State pushed", f"{result.reference}: {sent}.", f"Digest {result.digest}")

    def ask_pull(self) -> PullDialog:
        dialog = PullDialog(self.window, self.last_reference)
        return self._open(dialog, lambda: self.pull_state(**dialog.values()))

    def pull_state(self, **values) -> Job:
        """``values`` are :meth:`PullDialog.values`: ``source``, ``trust`` and ``login``."""
        self.last_reference = str(values.get("source") or "")
        return self.run("Pulling a state", registry.pull_state, on_result=self._pulled, **values)

    def _pulled(self, result: registry.PullResult) -> None:
        self.last_pull = result
        imported = result.imported
        self.select_project(imported.project, state=imported.state_id)
        parents = f" with {len(result.parents)} parent state(s) it builds on" if result.parents else ""
        base = " and its base appliance" if result.base_from_registry else ""
        self.notify("State pulled", f"{imported.state_name or imported.state_id[:12]} is in {imported.project}"
                    f"{parents}{base} ({human_bytes(result.bytes_downloaded)} downloaded).", result.reference)
