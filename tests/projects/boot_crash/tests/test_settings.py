from settings import load


def test_missing_settings_is_an_error(monkeypatch):
    monkeypatch.setenv("APP_SETTINGS", "/nonexistent.ini")
    assert "missing" in load()
