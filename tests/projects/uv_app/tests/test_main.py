from main import section_names


def test_names():
    assert section_names("[one]\n[two]\n") == ["one", "two"]
