"""Mail tests reuse the bundle fixtures (a base image and a qcow2 chain) to mail a real bundle."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles"))

from bundle_fixtures import chain  # noqa: E402,F401
