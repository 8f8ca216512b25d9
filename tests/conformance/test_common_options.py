from executors.testing import CommonOptionTests


class TestCommonOptions(CommonOptionTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
