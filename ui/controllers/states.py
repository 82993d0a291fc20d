"""The Projects page's state actions: save, restore, rename, delete a state, add a note, read the console.

Each is one use case of :mod:`vmlog.app` (the same functions ``vml state ...``, ``vml note`` and
``vml console`` call) in a job; :class:`StateActions` is mixed into the projects controller, whose
``run``, ``view``, ``project`` and ``_label`` it uses.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from ui.dialogs import BranchDialog, ConsoleDialog, RestoreDialog, SaveStateDialog, TextDialog
from ui.settings_dialogs import VMSettingsDialog
from ui.workers import Job, when_alive
from vmlog.app import logbook, running, vm_settings
from vmlog.app import states as app_states
from vmlog.app.types import VMState


class StateActions:
    """Turns the state buttons and dialogs into state use cases."""

    def ask_save(self) -> SaveStateDialog:
        dialog = SaveStateDialog(self.window, self.project or "")
        return self._open(dialog, lambda: self.save_state(*dialog.values()))

    def save_state(self, state_name: str | None, message: str) -> Job:
        name = self.project
        return self.run(
            f"Saving a state of {name}", app_states.save_state, name, state_name, message=message,
            on_result=lambda state: self.page.tree.select_state(state.id),
        )

    def ask_restore(self, state_id: str) -> RestoreDialog:
        view = self.view
        dirty = bool(view and view.info.unsaved_changes)
        vm_on = bool(view and (view.busy or view.vm.state == VMState.SAVED))
        dialog = RestoreDialog(self.window, self._label(state_id), dirty=dirty, running=vm_on)
        return self._open(
            dialog, lambda: self.restore_state(state_id, discard=dialog.choice == RestoreDialog.DISCARD)
        )

    def restore_state(self, state_id: str, *, discard: bool = False) -> Job:
        return self.run(
            f"Restoring {self._label(state_id)}", app_states.restore_state, self.project, state_id, discard=discard,
            stop=not discard,
        )

    def ask_branch(self, state_id: str) -> BranchDialog:
        taken = {n.name for n in self.view.nodes if n.name} if self.view else set()
        dialog = BranchDialog(self.window, self._label(state_id), taken)
        return self._open(dialog, lambda: self.branch_state(state_id, dialog.value()))

    def branch_state(self, state_id: str, branch: str) -> Job:
        """Go back to ``state_id`` and save its first state of the new branch under the name asked for.

        The same two use cases as ``vml state restore`` then ``vml state save NAME``; the second saves the
        restored disks, so the new branch shows in the tree with its name before any work is done on it.
        """
        name, label = self.project, self._label(state_id)

        def branch_off(progress, ctx=None) -> app_states.State:
            app_states.restore_state(name, state_id, stop=True, ctx=ctx, progress=progress)
            return app_states.save_state(name, branch, message=f"branch {branch} from {label}", ctx=ctx)

        return self.run(
            f"Branching {branch} from {label}", branch_off,
            on_result=lambda state: self.page.tree.select_state(state.id),
        )

    def ask_rename(self, state_id: str) -> TextDialog:
        dialog = TextDialog(self.window, "Rename state", "New name:", self._label(state_id))
        return self._open(dialog, lambda: self.rename_state(state_id, dialog.value()))

    def rename_state(self, state_id: str, new_name: str) -> Job:
        return self.run(f"Renaming {self._label(state_id)}", app_states.rename_state, self.project, state_id, new_name,
                        with_progress=False)

    def delete_state(self, state_id: str) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Question, "Delete state", f"Delete the state “{self._label(state_id)}”?",
                          QMessageBox.StandardButton.Cancel, self.window)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setInformativeText("Its disk layer is removed for good; there is no undo.")
        cancel = box.button(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)  # Return must not delete
        box.setEscapeButton(cancel)
        self.active_dialog = box
        box.buttonClicked.connect(
            lambda button: button is delete and self.run(
                f"Deleting {self._label(state_id)}", app_states.remove_state, self.project, state_id
            )
        )
        box.open()
        return box

    def add_note(self, text: str) -> Job:
        state = self.page.tree.selected_state() or None
        job = self.run(
            "Adding a note", logbook.add_note, text, project_name=self.project, ref=state, with_progress=False
        )
        job.signals.finished.connect(lambda _r: self.page.logbook.note_saved())
        return job

    def ask_settings(self) -> Job:
        """Read the VM's settings in a job, then open the Settings dialog on them."""
        name, ctx = self.project, self.ctx

        def read(progress=None) -> vm_settings.VMSettings:
            return vm_settings.vm_settings(name, ctx=ctx)

        job = Job(read, title=f"Reading the settings of {name}", pass_cancel=False)
        job.signals.finished.connect(when_alive(self, self._show_settings))
        return self.runner.start(job)

    def _show_settings(self, settings: vm_settings.VMSettings) -> VMSettingsDialog:
        running = settings.vm not in (VMState.STOPPED, VMState.CRASHED)
        dialog = VMSettingsDialog(self.window, settings, running=running)
        return self._open(dialog, lambda: self.change_settings(settings.project, dialog.values()))

    def change_settings(self, name: str, changes: dict) -> Job | None:
        if not changes:
            return None
        return self.run(f"Changing the settings of {name}", vm_settings.set_vm_settings, name,
                        on_result=self._settings_changed, **changes)

    def _settings_changed(self, change: vm_settings.SettingsChange) -> None:
        if change.next_boot:
            self.notify("Settings saved", "They apply when the machine next starts: " + "; ".join(change.next_boot))

    def show_console(self) -> None:
        name = self.project

        def read(progress=None) -> str:
            return running.console_tail(name, lines=200, ctx=self.ctx)

        job = Job(read, title=f"Reading the console of {name}", pass_cancel=False)
        job.signals.finished.connect(
            when_alive(self, lambda text: self._open(ConsoleDialog(self.window, name, text), lambda: None))
        )
        self.runner.start(job)
