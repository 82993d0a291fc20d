"""Reproduction checks: what a state must still produce, kept with the project, judged in a throw-away clone."""
