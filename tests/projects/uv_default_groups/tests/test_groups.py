import six
import tomli_w
import toolz


def test_the_requirement_with_a_tabbed_comment():
    assert six.PY3


def test_groups_and_their_includes():
    assert toolz.identity(1) == 1
    assert tomli_w.dumps({"a": 1}) == "a = 1\n"
