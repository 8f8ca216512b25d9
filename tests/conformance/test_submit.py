from executors.testing import SubmitTests


class TestSubmit(SubmitTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
