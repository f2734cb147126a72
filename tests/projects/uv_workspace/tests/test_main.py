import iniconfig  # a dependency of the workspace member, from the lock

from greeting import greet
from shout import shout


def test_workspace_member_and_path_dependency():
    assert shout(greet("x")) == "HELLO, X!"


def test_member_dependency_is_installed():
    assert iniconfig.__name__ == "iniconfig"
