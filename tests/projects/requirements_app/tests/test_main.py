from main import sections


def test_sections_in_order():
    assert sections("[a]\nx = 1\n[b]\n") == ["a", "b"]


def test_no_sections():
    assert sections("") == []
