"""The Projects page's registry actions: push a state to an OCI registry, pull one from it.

The same :mod:`vmlog.app.registry` functions as ``vml state push|pull``; :class:`RegistryActions` is
mixed into the projects controller, whose ``run``, ``_open``, ``_label``, ``_ancestors``, ``notify``
and ``select_project`` it uses. A pull is verified before anything is written, as an imported file is;
a refusal (credentials, an unknown signer) reaches the jobs panel's failure box with its fix.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox

from ui.bundle_dialogs import PullDialog, PushDialog
from ui.formatting import human_bytes
from ui.workers import Job
from vmlog.app import exchange, registry


def pull_or_untrusted(**values: Any) -> registry.PullResult | exchange.Untrusted:
    """The pulled state, or the refusal of a signer the user has not accepted (the window asks, then pulls again)."""
    try:
        return registry.pull_state(**values)
    except exchange.Untrusted as refusal:
        if values.get("trust"):
            raise
        return refusal


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
        return self.run("Pulling a state", pull_or_untrusted, on_result=lambda got: self._pulled(got, values),
                        **values)

    def _pulled(self, result: registry.PullResult | exchange.Untrusted, values: dict[str, Any]) -> None:
        if isinstance(result, exchange.Untrusted):
            self.ask_trust(result, values)
            return
        self.last_pull = result
        imported = result.imported
        self.select_project(imported.project, state=imported.state_id)
        parents = f" with {len(result.parents)} parent state(s) it builds on" if result.parents else ""
        base = " and its base appliance" if result.base_from_registry else ""
        self.notify("State pulled", f"{imported.state_name or imported.state_id[:12]} is in {imported.project}"
                    f"{parents}{base} ({human_bytes(result.bytes_downloaded)} downloaded).", result.reference)

    def ask_trust(self, refusal: exchange.Untrusted, values: dict[str, Any]) -> QMessageBox:
        """Who signed the state is not known here: pull it anyway only if the user says so (Cancel is the default)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Pull a state", refusal.message,
                          QMessageBox.StandardButton.Cancel, self.window)
        box.setInformativeText("Nothing was written. Only pull it if you know who pushed it: check the signer's"
                               " fingerprint with them.")
        anyway = box.addButton("Pull anyway", QMessageBox.ButtonRole.AcceptRole)
        cancel = box.button(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)
        self.active_dialog = box
        box.buttonClicked.connect(lambda button: button is anyway and self.pull_state(**{**values, "trust": True}))
        box.open()
        return box
