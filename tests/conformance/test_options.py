from executors.testing import OptionTests


class TestOption(OptionTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
