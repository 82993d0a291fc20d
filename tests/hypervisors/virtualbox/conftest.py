"""virtualbox backend tests run against the simulators in tests/simulators (on PATH, state in tmp_path)."""

from simulators.fixtures import simulated_tools  # noqa: F401 - fixture
