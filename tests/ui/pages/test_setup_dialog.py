"""The Set up dialog offers the context templates, built-in ones first, and hands setup the filled context."""

from __future__ import annotations

from pathlib import Path

from ui.pages.setup_dialog import DEFAULT_CONTEXT_LABEL, ContextSetupDialog
from vmlog.app import contexts
from vmlog.appliances.builtin import CERNVM_CONTEXT_TEMPLATES
from vmlog.context.model import Context


def test_set_up_offers_templates_builtins_first_and_fills_the_chosen_one(qtbot, vmlog_home: Path) -> None:
    contexts.new_template("analysis", description="my analysis VM")
    dialog = ContextSetupDialog(None, "cernvm", {"cernvm"})
    qtbot.addWidget(dialog)
    assert dialog.context.itemText(0) == DEFAULT_CONTEXT_LABEL
    assert dialog.template_names() == [*CERNVM_CONTEXT_TEMPLATES, "analysis"]
    assert dialog.context.itemText(2) == "cernvm-atlas (built-in)"
    assert "context" not in dialog.values()  # the default: setup makes its own
    dialog.name.setText("higgs_1")
    dialog.choose_template("cernvm-atlas")
    context = dialog.values()["context"]
    assert isinstance(context, Context)
    assert context.user == "atlas" and context.hostname == "higgs-1" and "atlas.cern.ch" in context.cvmfs_repositories
    dialog.choose_template("analysis")
    assert dialog.values()["context"].hostname == "higgs-1"
    dialog.reject()


def test_a_broken_template_file_is_not_offered(qtbot, vmlog_home: Path) -> None:
    contexts.new_template("fine")
    broken = contexts.show_template("fine").summary.path
    assert broken is not None
    Path(broken).with_name("broken.toml").write_text("kind = \n")
    dialog = ContextSetupDialog(None, "cernvm", set())
    qtbot.addWidget(dialog)
    assert "broken" not in dialog.template_names() and "fine" in dialog.template_names()
    dialog.reject()
