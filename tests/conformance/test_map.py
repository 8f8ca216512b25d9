from executors.testing import MapTests


class TestMap(MapTests):
    """Runs against every backend in the registry (see tests/conftest.py)."""
