from executors.testing import LargeDataTests


class TestLargeData(LargeDataTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
