"""The use cases: what a user does with vmlog, one module per job, each a thin sequence of domain calls.

The CLI (``vmlog.cli``), the GUI (``ui``), ``vml setup`` and the demo call only this package; nothing
below it (projects, bundles, store, appliances, releases, context, logbook, mail, hypervisors) imports
it. A mutating use case runs inside one :class:`vmlog.app.session.Session`: the project locks, a
logbook row written before the work and completed after, and the undo steps run if it fails.
"""
