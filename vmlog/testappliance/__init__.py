"""The vmlog test appliance: a tiny bootable disk image built from Debian packages, and its guest agent.

It is the demo appliance of the product and what every VM test boots (see docs/test-appliance.md).
"""
