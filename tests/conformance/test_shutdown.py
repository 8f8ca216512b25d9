from executors.testing import ShutdownTests


class TestShutdown(ShutdownTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
