from executors.testing import InitializerTests


class TestInitializer(InitializerTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
