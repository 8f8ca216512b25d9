from executors.testing import InteropTests


class TestInterop(InteropTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
