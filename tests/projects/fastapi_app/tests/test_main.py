from main import index, item


def test_index():
    assert index() == {"service": "items"}


def test_item():
    assert item(1) == {"name": "hammer"}


def test_unknown_item():
    assert item(99) == {"name": "unknown"}
