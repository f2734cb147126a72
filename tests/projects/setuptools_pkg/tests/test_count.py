from inicount import count


def test_counts_sections():
    assert count("[a]\n[b]\n[c]\n") == 3


def test_empty():
    assert count("") == 0


def test_keys_do_not_count():
    assert count("[a]\nx = 1\ny = 2\n") == 1
