"""Projects: a base image, a tree of saved states and a live layer, kept as files vmlog owns.

The use cases over them are in :mod:`vmlog.app` (projects, running, states, exchange).
"""
