"""core.detection.native: the Debian packages a project's native code needs, read from its build
files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.detection.native import install_script, library_package, native_needs, pkg_config_package


def needs(
    root: Path, *, name: str | None = None, requirements: list[str] | None = None
) -> list[str]:
    return native_needs(
        root,
        project_name=name,
        pyproject_tool={},
        requirement_names=requirements or [],
        builds_native=True,
    ).packages


@pytest.mark.parametrize(
    ("library", "package"),
    [
        ("yaml", "libyaml-dev"),
        ("z", "zlib1g-dev"),
        ("-lxml2", "libxml2-dev"),
        (":libmpfr.so.6", "libmpfr-dev"),
        ("libsnappy", "libsnappy-dev|snappy-dev"),
        ("ldap", "libldap-dev|libldap2-dev"),
        ("m", None),
        ("pthread", None),
        ("python3.11", None),
        ("bad name; rm -rf /", None),
    ],
)
def test_a_linker_name_maps_to_a_package_group(library: str, package: str | None) -> None:
    assert library_package(library) == package


def test_an_unknown_library_tries_the_debian_naming_conventions() -> None:
    assert library_package("frobnicate2") == "libfrobnicate2-dev|frobnicate2-dev|libfrobnicate-dev"


def test_pkg_config_modules_map_through_the_table_or_their_library_name() -> None:
    assert pkg_config_package("libxml-2.0") == "libxml2-dev"
    assert pkg_config_package("libgit2") == "libgit2-dev|git2-dev|libgit-dev"


def test_setup_py_extension_libraries_are_followed_through_names(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "LIBS = ['yaml'] + ['m']\n"
        "setup(ext_modules=[Extension('p._c', ['c.c'], libraries=LIBS)])\n"
    )
    assert needs(tmp_path) == ["libyaml-dev"]


def test_setup_py_pkg_config_and_find_library(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text(
        "import subprocess, ctypes.util\n"
        "flags = subprocess.check_output(['pkg-config', '--cflags', 'libxslt'])\n"
        "other = subprocess.getoutput('pkg-config --libs libpq')\n"
        "ctypes.util.find_library('ffi')\n"
        "from setuptools import setup\nsetup()\n"
    )
    assert sorted(needs(tmp_path)) == [
        "libffi-dev",
        "libpq-dev",
        "libxslt1-dev",
        "pkgconf|pkg-config",
    ]


def test_meson_dependencies_are_pkg_config_names(tmp_path: Path) -> None:
    (tmp_path / "meson.build").write_text(
        "py.extension_module('_c', 'c.c', dependencies: [dependency('yaml-0.1'), "
        "dependency('python3'), dependency('threads')])\n"
    )
    assert needs(tmp_path) == ["pkgconf|pkg-config", "libyaml-dev"]


def test_pyproject_ext_modules_libraries(tmp_path: Path) -> None:
    tool = {"setuptools": {"ext-modules": [{"name": "p._c", "sources": [], "libraries": ["pq"]}]}}
    found = native_needs(
        tmp_path, project_name="p", pyproject_tool=tool, requirement_names=[], builds_native=True
    )
    assert found.packages == ["libpq-dev"]
    assert found.reasons == [
        "system packages: libpq-dev (pyproject.toml ext-modules link library 'pq')"
    ]


def test_well_known_projects_and_source_only_requirements(tmp_path: Path) -> None:
    # PyYAML itself needs libyaml to build its extension; a project depending on PyYAML gets a
    # wheel and needs nothing; psycopg2 ships no wheels, so a dependency on it compiles.
    assert needs(tmp_path, name="PyYAML") == ["libyaml-dev"]
    assert needs(tmp_path, name="app", requirements=["PyYAML"]) == []
    assert needs(tmp_path, name="app", requirements=["psycopg2"]) == ["libpq-dev"]
    assert (
        native_needs(
            tmp_path,
            project_name="PyYAML",
            pyproject_tool={},
            requirement_names=[],
            builds_native=False,
        ).packages
        == []
    )


def test_the_install_script_quotes_only_valid_package_names() -> None:
    script = install_script(["libyaml-dev", "libfoo-dev|foo-dev", "bad'; rm -rf /"])
    assert "for group in 'libyaml-dev' 'libfoo-dev|foo-dev'; do" in script
    assert "bad" not in script
