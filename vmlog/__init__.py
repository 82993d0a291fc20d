"""vmlog, the Virtual Machine Logbook: projects, state trees and shareable state diffs for VMs."""

__version__ = "0.1.0"
