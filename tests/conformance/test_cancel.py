from executors.testing import CancelTests


class TestCancel(CancelTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
