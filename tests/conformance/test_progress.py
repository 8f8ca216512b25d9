from executors.testing import ProgressTests


class TestProgress(ProgressTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
