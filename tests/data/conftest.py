import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every data test gets its own cache folder and no download mirror."""
    monkeypatch.setenv("IDRESNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IDRESNET_CIFAR_URL", raising=False)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"
