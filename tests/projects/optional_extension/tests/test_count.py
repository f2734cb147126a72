from quickcount import count_words


def test_words():
    assert count_words("a b c") == 3


def test_empty():
    assert count_words("") == 0
