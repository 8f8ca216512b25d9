from executors.testing import SharedObjectTests


class TestSharedObjects(SharedObjectTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
