from executors.testing import ContextTests


class TestContext(ContextTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
