from executors.testing import ExceptionTests


class TestException(ExceptionTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
