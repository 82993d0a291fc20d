"""The logbook panel: newest first, filtered by kind and text, lines made off the UI thread."""

from __future__ import annotations

from ui.logbook_panel import LogbookPanel, logbook_rows

HISTORY = [
    {"kind": "operation", "started": "2026-11-21T10:00:00+0000", "who": "anna", "action": "state save",
     "state": "s1", "outcome": "ok", "duration": 2.0},
    {"kind": "note", "created": "2026-11-21T11:00:00+0000", "who": "anna", "state": "s1",
     "text": "calibration looks right"},
    {"kind": "operation", "started": "2026-11-21T12:00:00+0000", "who": "bob", "action": "up",
     "outcome": "failed", "message": "no KVM"},
]


def test_newest_on_top_with_state_names_and_durations(qtbot) -> None:
    panel = LogbookPanel()
    qtbot.addWidget(panel)
    panel.set_history(HISTORY, {"s1": "calibrated"})
    rows = panel.visible_rows()
    assert [r[2] for r in rows] == ["up", "note calibrated", "state save calibrated"]
    assert rows[2][4] == "2 s" and rows[0][4] == "no KVM"
    model = panel.proxy
    from PySide6.QtCore import Qt

    assert model.index(0, 3).data(Qt.ItemDataRole.ForegroundRole).name() == "#c0392b"
    assert model.index(1, 4).data(Qt.ItemDataRole.FontRole).italic()


def test_kind_and_text_filters_combine(qtbot) -> None:
    panel = LogbookPanel()
    qtbot.addWidget(panel)
    panel.set_rows(logbook_rows(HISTORY))
    panel.kind.setCurrentText("Notes")
    assert [r[4] for r in panel.visible_rows()] == ["calibration looks right"]
    panel.kind.setCurrentText("Failures")
    assert [r[3] for r in panel.visible_rows()] == ["failed"]
    panel.kind.setCurrentText("Everything")
    panel.search.setText("ANNA")
    assert len(panel.visible_rows()) == 2
    panel.search.setText("kvm")
    assert [r[1] for r in panel.visible_rows()] == ["bob"]


def test_the_same_lines_again_are_not_redrawn(qtbot) -> None:
    panel = LogbookPanel()
    qtbot.addWidget(panel)
    panel.set_rows(logbook_rows(HISTORY))
    resets: list[bool] = []
    panel.proxy.modelReset.connect(lambda: resets.append(True))
    panel.set_rows(logbook_rows(HISTORY))
    assert not resets
    panel.set_rows(logbook_rows(HISTORY[:2]))
    assert resets and len(panel.visible_rows()) == 2


def test_a_fingerprint_made_off_the_ui_thread_spares_comparing_the_lines(qtbot) -> None:
    from ui.logbook_panel import lines_key

    panel = LogbookPanel()
    qtbot.addWidget(panel)
    lines = logbook_rows(HISTORY)
    panel.set_rows(lines, lines_key(lines))
    resets: list[bool] = []
    panel.proxy.modelReset.connect(lambda: resets.append(True))
    again = logbook_rows(HISTORY)
    panel.set_rows(again, lines_key(again))
    assert not resets
    fewer = logbook_rows(HISTORY[1:])
    panel.set_rows(fewer, lines_key(fewer))
    assert resets and len(panel.visible_rows()) == 2
