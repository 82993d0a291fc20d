"""The ``vml`` command line: one module per command, command groups as sub-packages."""
