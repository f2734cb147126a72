import six

from ciwf import dump


def test_dump_uses_the_check_extra():
    assert dump({"a": "b"}) == 'a = "b"\n'


def test_the_workflow_requirements_are_installed():
    assert six.PY3
