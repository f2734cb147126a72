"""What a build's reuse key depends on, and how changes between two builds are described."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.builds.changes import compare, packages_of, project_of
from core.builds.options import BuildOptions
from core.builds.reuse import Inputs, tree_digest
from core.settings import Settings


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def inputs(**changes: Any) -> Inputs:
    values: dict[str, Any] = {
        "tree": "t" * 64,
        "options": BuildOptions(),
        "base_images": {"python:3.11-slim": "sha256:aa", "python:3.11": "sha256:bb"},
        "python_version": "3.11",
        "service_version": "1.0",
        "advisories": "3",
    }
    values.update(changes)
    return Inputs(**values)


class TestTreeDigest:
    def test_equal_for_the_same_files_written_in_another_order(self, tmp_path: Path) -> None:
        files = {"app.py": "x = 1\n", "tests/test_app.py": "def test(): pass\n"}
        one = make_tree(tmp_path / "one", files)
        two = make_tree(tmp_path / "two", dict(reversed(files.items())))

        assert tree_digest(one) == tree_digest(two)

    def test_a_changed_byte_a_renamed_file_or_an_exec_bit_changes_it(self, tmp_path: Path) -> None:
        base = tree_digest(make_tree(tmp_path / "base", {"a.py": "x = 1\n"}))

        assert tree_digest(make_tree(tmp_path / "byte", {"a.py": "x = 2\n"})) != base
        assert tree_digest(make_tree(tmp_path / "name", {"b.py": "x = 1\n"})) != base
        executable = make_tree(tmp_path / "exec", {"a.py": "x = 1\n"})
        (executable / "a.py").chmod(0o755)
        assert tree_digest(executable) != base


class TestKey:
    def test_labels_and_notifications_are_not_inputs(self, tmp_path: Path) -> None:
        settings = Settings(data_dir=tmp_path)
        plain = inputs().key(settings)

        assert inputs(options=BuildOptions(tag="app:2")).key(settings) == plain
        assert (
            inputs(options=BuildOptions(callback_url="https://ci.example.com/hook")).key(settings)
            == plain
        )

    def test_everything_that_decides_the_outcome_is(self, tmp_path: Path) -> None:
        settings = Settings(data_dir=tmp_path)
        plain = inputs().key(settings)
        other_base = {"python:3.11-slim": "sha256:cc", "python:3.11": "sha256:bb"}

        differing = [
            inputs(tree="u" * 64),
            inputs(options=BuildOptions(run_tests=False)),
            inputs(options=BuildOptions(test_command="pytest -x")),
            inputs(options=BuildOptions(build_args={"MODE": "prod"})),
            inputs(base_images=other_base),
            inputs(python_version="3.13"),
            inputs(service_version="1.1"),
            inputs(advisories="4"),
            inputs(dependency_sources=("https://pypi.internal.example/simple",)),
        ]
        keys = {candidate.key(settings) for candidate in differing}
        assert plain not in keys
        assert len(keys) == len(differing)
        stricter = Settings(data_dir=tmp_path, test_memory_bytes=256 * 1024 * 1024)
        assert inputs().key(stricter) != plain
        policy = Settings(data_dir=tmp_path, vulnerability_policy="high")
        assert inputs().key(policy) != plain


class TestProject:
    def test_the_tags_repository_else_the_declared_name(self) -> None:
        assert project_of(BuildOptions(tag="team/app:1.2"), "whatever") == "team/app"
        assert project_of(BuildOptions(tag="registry:5000/app"), None) == "registry:5000/app"
        assert project_of(BuildOptions(), "My_Project.Name") == "my-project-name"
        assert project_of(BuildOptions(), None) is None


def sbom(*components: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "components": [
            {"name": name, "version": version, "purl": f"pkg:{kind}/{name}@{version}"}
            for kind, name, version in components
        ]
    }


class TestCompare:
    def test_packages_added_removed_and_upgraded_and_advisories_new_and_fixed(self) -> None:
        before = packages_of(
            sbom(("pypi", "flask", "2.3.0"), ("pypi", "click", "8.1.0"), ("deb", "libc6", "2.36"))
        )
        after = packages_of(
            sbom(("pypi", "flask", "3.0.0"), ("pypi", "rich", "13.0"), ("deb", "libc6", "2.36"))
        )
        old = [{"id": "GHSA-1", "package": "flask", "severity": "high"}]
        new = [{"id": "GHSA-2", "package": "rich", "severity": "low", "installed_version": "13.0"}]

        changes = compare(
            previous_id="b_1",
            size=(1000, 1500),
            packages=(before, after),
            advisories=(old, new),
        )

        assert changes["previous"] == "b_1"
        assert changes["size_bytes_delta"] == 500
        assert changes["packages"] == {
            "added": [{"type": "pypi", "name": "rich", "version": "13.0"}],
            "removed": [{"type": "pypi", "name": "click", "version": "8.1.0"}],
            "changed": [{"type": "pypi", "name": "flask", "from": "2.3.0", "to": "3.0.0"}],
        }
        assert [item["id"] for item in changes["advisories"]["new"]] == ["GHSA-2"]
        assert [item["id"] for item in changes["advisories"]["fixed"]] == ["GHSA-1"]

    def test_what_either_build_did_not_record_is_null(self) -> None:
        changes = compare(
            previous_id="b_1", size=(None, 10), packages=(None, {}), advisories=([], None)
        )

        assert changes["size_bytes_delta"] is None
        assert changes["packages"] is None
        assert changes["advisories"] is None
