"""Projects: a base image, a tree of saved states and a live layer, kept as files vmlog owns.

The GUI and the CLI both call :mod:`vmlog.projects.service`.
"""
