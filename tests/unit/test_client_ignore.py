"""client.ignore: .dockerignore as BuildKit reads it, .gitignore as git reads it."""

from __future__ import annotations

import pytest

from client.ignore import DockerIgnore, GitIgnore, IgnoreFileError, parse_gitignore


def docker(*lines: str) -> DockerIgnore:
    return DockerIgnore.parse("\n".join(lines))


def git(*lines: str, base: str = "") -> GitIgnore:
    return GitIgnore(parse_gitignore("\n".join(lines), base))


class TestDockerignoreMatching:
    @pytest.mark.parametrize(
        ("patterns", "path", "excluded"),
        [
            # The examples of Docker's .dockerignore documentation.
            (["*/temp*"], "somedir/temporary.txt", True),
            (["*/temp*"], "somedir/temp", True),
            (["*/temp*"], "temp", False),
            (["*/temp*"], "a/b/temp", False),
            (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
            (["temp?"], "tempa", True),
            (["temp?"], "temp", False),
            (["temp?"], "dir/tempa", False),
            (["**/*.go"], "main.go", True),
            (["**/*.go"], "a/b/c.go", True),
            (["**/*.go"], "a/b/c.gox", False),
            # Whole-path matching: no basename matching at depth, unlike .gitignore.
            (["*.pyc"], "a.pyc", True),
            (["*.pyc"], "pkg/a.pyc", False),
            (["secret.txt"], "sub/secret.txt", False),
            # A matching folder excludes everything below it.
            (["build"], "build/lib/x.py", True),
            (["build/"], "build/lib/x.py", True),
            (["*"], "anything/below/file", True),
            (["docs/*.md"], "docs/a.md", True),
            (["docs/*.md"], "docs/sub/a.md", False),
            # `**` spans any number of folders, zero included.
            (["a/**/b"], "a/b", True),
            (["a/**/b"], "a/x/y/b", True),
            (["a/**/b"], "ab", False),
            (["**"], "x/y", True),
            (["foo/**"], "foo/bar/baz", True),
            (["foo/**"], "foo", False),
            (["**/node_modules"], "node_modules", True),
            (["**/node_modules"], "web/node_modules/x.js", True),
            # Cleaning: a leading "/", "./", "//" and ".." are normalised away.
            (["/foo"], "foo", True),
            (["./foo/"], "foo/x", True),
            (["foo//bar"], "foo/bar", True),
            (["foo/../bar"], "bar", True),
            # Regular-expression characters are literal.
            (["a+b(c).txt"], "a+b(c).txt", True),
            (["a.txt"], "abtxt", False),
            (["file[0-9].txt"], "file5.txt", True),
            (["file[0-9].txt"], "filex.txt", False),
            (["file[^0-9].txt"], "filex.txt", True),
            (["\\*.txt"], "*.txt", True),
            (["\\*.txt"], "a.txt", False),
            # patternmatcher's fast paths, kept: a leading "**" is a plain suffix match.
            (["**foo"], "barfoo", True),
        ],
    )
    def test_matches_like_buildkit(self, patterns: list[str], path: str, excluded: bool) -> None:
        assert docker(*patterns).excludes(path) is excluded

    def test_exclamation_reincludes_what_an_earlier_pattern_excluded(self) -> None:
        rules = docker("*.md", "!README.md")

        assert rules.excludes("CHANGES.md")
        assert not rules.excludes("README.md")

    def test_last_matching_pattern_wins(self) -> None:
        # Docker's own example: README-secret.md is excluded again by the last line.
        rules = docker("*.md", "!README*.md", "README-secret.md")

        assert rules.excludes("README-secret.md")
        assert not rules.excludes("README-public.md")
        assert rules.excludes("other.md")

    def test_exception_reaches_inside_an_excluded_folder(self) -> None:
        rules = docker("docs", "!docs/keep.md")

        assert rules.excludes("docs/other.md")
        assert not rules.excludes("docs/keep.md")
        assert rules.excludes("docs/sub/keep.md")

    def test_exception_of_a_parent_folder_reincludes_its_files(self) -> None:
        rules = docker("*", "!src")

        assert rules.excludes("setup.cfg")
        assert not rules.excludes("src/pkg/module.py")

    def test_comments_blank_lines_whitespace_and_bom(self) -> None:
        rules = DockerIgnore.parse("\ufeff# a comment\n\n   data   \n\t!data/keep \n# *.py\n")

        assert [(p.text, p.exclusion) for p in rules.patterns] == [
            ("data", False),
            ("data/keep", True),
        ]
        assert rules.excludes("data/x")
        assert not rules.excludes("data/keep")
        assert not rules.excludes("a.py")

    def test_hash_after_leading_space_is_a_pattern_not_a_comment(self) -> None:
        # ReadAll drops a line as a comment only if "#" is its very first character.
        assert docker(" #file").excludes("#file")

    @pytest.mark.parametrize(
        ("line", "message"),
        [("!", "illegal exclusion"), ("file[0-9", "bad pattern"), ("trailing\\", "backslash")],
    )
    def test_invalid_patterns_are_refused_with_their_line(self, line: str, message: str) -> None:
        with pytest.raises(IgnoreFileError, match=message) as raised:
            DockerIgnore.parse(f"ok\n{line}\n", ".dockerignore")

        assert ".dockerignore, line 2" in str(raised.value)


class TestDockerignoreFolderSkipping:
    def test_folder_is_skipped_without_exceptions(self) -> None:
        assert docker("node_modules").may_skip_folder("node_modules")

    def test_folder_holding_an_exception_is_walked(self) -> None:
        rules = docker("docs", "!docs/keep.md")

        assert not rules.may_skip_folder("docs")
        assert rules.may_skip_folder("other")

    def test_trailing_glob_of_an_exception_counts_as_its_folder(self) -> None:
        assert not docker("vendor", "!vendor/keep/**").may_skip_folder("vendor/keep")

    def test_wildcard_exception_forces_walking_every_excluded_folder(self) -> None:
        rules = docker("build", "!**/keep.txt")

        assert not rules.may_skip_folder("build")
        assert not rules.excludes("build/deep/keep.txt")
        assert rules.excludes("build/deep/other.txt")


class TestGitignoreMatching:
    @pytest.mark.parametrize(
        ("patterns", "path", "is_folder", "ignored"),
        [
            # No slash: a name at any depth.
            (["*.log"], "a.log", False, True),
            (["*.log"], "x/y/a.log", False, True),
            (["secret"], "deep/down/secret", False, True),
            # A slash anchors to the .gitignore's folder.
            (["/*.log"], "a.log", False, True),
            (["/*.log"], "x/a.log", False, False),
            (["doc/*.txt"], "doc/a.txt", False, True),
            (["doc/*.txt"], "doc/sub/a.txt", False, False),
            (["doc/frotz/"], "doc/frotz", True, True),
            (["doc/frotz/"], "a/doc/frotz", True, False),
            # A trailing slash: folders only.
            (["build/"], "build", True, True),
            (["build/"], "build", False, False),
            (["build/"], "src/build", True, True),
            # `**` in its three special places, and as "*" elsewhere.
            (["**/foo"], "foo", False, True),
            (["**/foo"], "a/b/foo", False, True),
            (["**/foo/bar"], "x/foo/bar", False, True),
            (["abc/**"], "abc/x/y", False, True),
            (["abc/**"], "abc", True, False),
            (["a/**/b"], "a/b", False, True),
            (["a/**/b"], "a/x/y/b", False, True),
            (["a/**/b"], "ab", False, False),
            (["a**b"], "axxb", False, True),
            (["x/a**b"], "x/a/b", False, False),
            # Wildcards never cross "/".
            (["a?b"], "a/b", False, False),
            (["x/a*"], "x/a/b", False, False),
            # Bracket expressions.
            (["[a-c].txt"], "b.txt", False, True),
            (["[a-c].txt"], "d.txt", False, False),
            (["[!a].txt"], "b.txt", False, True),
            (["[!a].txt"], "a.txt", False, False),
            (["[^a].txt"], "a.txt", False, False),
            (["[[:digit:]].txt"], "7.txt", False, True),
            (["[[:digit:]].txt"], "x.txt", False, False),
            (["[]a].txt"], "].txt", False, True),
            (["[a-"], "a-", False, False),  # unterminated: matches nothing
            # Escapes, comments and trailing spaces.
            (["\\#hash"], "#hash", False, True),
            (["#hash"], "#hash", False, False),
            (["\\!bang"], "!bang", False, True),
            (["name   "], "name", False, True),
            (["name\\ "], "name ", False, True),
            (["name\\ "], "name", False, False),
            (["trailing\\"], "trailing", False, False),
        ],
    )
    def test_matches_like_git(
        self, patterns: list[str], path: str, is_folder: bool, ignored: bool
    ) -> None:
        assert git(*patterns).excludes(path, is_folder) is ignored

    def test_negation_and_order(self) -> None:
        rules = git("*.log", "!keep.log")

        assert rules.excludes("a.log", False)
        assert not rules.excludes("keep.log", False)
        assert git("!keep.log", "*.log").excludes("keep.log", False)  # the later line wins

    def test_nested_file_applies_only_below_its_folder_and_wins(self) -> None:
        rules = git("*.log").extended("!debug.log\ndata/\n", "sub")

        assert rules.excludes("debug.log", False)
        assert not rules.excludes("sub/debug.log", False)
        assert rules.excludes("sub/x/data", True)
        assert not rules.excludes("data", True)

    def test_crlf_and_bom(self) -> None:
        rules = GitIgnore(parse_gitignore("\ufeff*.tmp\r\n!keep.tmp\r\n"))

        assert rules.excludes("a.tmp", False)
        assert not rules.excludes("keep.tmp", False)
