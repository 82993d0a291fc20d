"""The logbook: every action on a project, written before it starts and completed after, plus notes."""

from vmlog.logbook.book import Entry, Logbook, Note, Operation, open_logbook

__all__ = ["Entry", "Logbook", "Note", "Operation", "open_logbook"]
