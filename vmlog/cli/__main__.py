"""``python -m vmlog.cli``: the same as the ``vml`` command."""

from vmlog.cli.main import run

run()
