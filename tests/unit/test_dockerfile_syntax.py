"""core.dockerfile.syntax: each way a hand-written reader disagreed with BuildKit finds the image
or frontend BuildKit would use, or refuses the Dockerfile; cache mounts scoped per owner."""

from __future__ import annotations

import pytest

from core.dockerfile.lint import MAX_FINDINGS, lint
from core.dockerfile.syntax import (
    DockerfileInvalid,
    frontend_reference,
    image_uses,
    parse,
    parse_mount,
    refused_build_args,
    scope_cache_mounts,
)
from core.supply_chain.policy import check_base_images, final_base_image

ALLOWED = ["python:3.11"]


def images(text: str, build_args: dict[str, str] | None = None) -> list[tuple[int, str, str]]:
    return [(u.line, u.kind, u.reference) for u in image_uses(text, build_args)]


class TestParserDisagreements:
    def test_backslash_then_a_non_ascii_space_does_not_continue_the_line(self) -> None:
        # BuildKit only continues on `\` followed by spaces or tabs: the next line is a FROM.
        text = "FROM python:3.11\nRUN echo \\\u00a0\nFROM evil/image:1\n"

        assert images(text)[-1] == (3, "FROM", "evil/image:1")
        assert final_base_image(text) == "evil/image:1"
        assert [v.reference for v in check_base_images(text, ALLOWED)] == ["evil/image:1"]

    def test_an_unknown_directive_ends_the_directives_so_escape_is_not_set(self) -> None:
        # The backslash still continues lines; `evil` is then the FROM's image.
        text = "# foo=bar\n# escape=`\nFROM python:3.11 AS a\nFROM \\\nevil/image:1\n"

        assert parse(text).escape == "\\"
        assert images(text)[-1] == (4, "FROM", "evil/image:1")

    def test_a_known_escape_directive_is_applied(self) -> None:
        text = "# escape=`\nFROM python:3.11\nRUN echo \\\nFROM evil/image:1\n"

        assert parse(text).escape == "`"
        assert images(text)[-1] == (4, "FROM", "evil/image:1")

    def test_an_escaped_backslash_at_the_end_of_a_line_does_not_continue_it(self) -> None:
        text = "FROM python:3.11\nRUN echo \\\\\nFROM evil/image:1\n"

        assert final_base_image(text) == "evil/image:1"

    def test_a_lone_carriage_return_is_refused(self) -> None:
        # BuildKit v0.8 (dockerd 20.10) ends the line there, v0.12 trims it and continues.
        with pytest.raises(DockerfileInvalid, match="carriage return"):
            parse("FROM python:3.11\nRUN echo \\\r\r\nFROM evil/image:1\n")

    def test_crlf_line_ends_are_fine(self) -> None:
        assert images("FROM python:3.11\r\nRUN echo \\\r\n  hi\r\n") == [(1, "FROM", "python:3.11")]

    @pytest.mark.parametrize(
        "flag",
        [
            '"type=bind,from=evil/image:1,target=/x"',
            'type=bind,"from=evil/image:1",target=/x',
            "TYPE=bind,FROM=evil/image:1,TARGET=/x",
            "from=evil/image:1,target=/x",  # type defaults to bind
            "type=cache,From=evil/image:1,target=/x",
        ],
    )
    def test_mount_from_in_every_spelling(self, flag: str) -> None:
        text = f"FROM python:3.11\nRUN --mount={flag} true\n"

        assert images(text) == [(1, "FROM", "python:3.11"), (2, "RUN --mount", "evil/image:1")]

    def test_flags_split_over_continuation_lines(self) -> None:
        text = (
            "FROM python:3.11\nRUN \\\n  --mount=type=bind,\\\nfrom=evil/image:1,target=/x \\\n"
            "  true\n"
        )

        assert images(text)[-1] == (2, "RUN --mount", "evil/image:1")

    def test_onbuild_triggers_count(self) -> None:
        text = (
            "FROM python:3.11 AS base\nONBUILD COPY --from=base /a /b\n"
            "ONBUILD RUN --mount=from=evil/image:1,target=/x true\n"
        )

        assert images(text)[1:] == [
            (2, "COPY --from", "base"),  # a later build has no stage of that name
            (3, "RUN --mount", "evil/image:1"),
        ]

    def test_stages_are_not_images_but_a_later_index_is(self) -> None:
        text = (
            "FROM python:3.11 AS build\nFROM build\nCOPY --from=build /a /a\n"
            "COPY --from=0 /a /b\nCOPY --from=5 /a /c\n"
        )

        assert images(text) == [(1, "FROM", "python:3.11"), (5, "COPY --from", "5")]

    def test_variables_in_from_flags_are_refused(self) -> None:
        with pytest.raises(DockerfileInvalid, match="variables"):
            image_uses("ARG X=evil:1\nFROM python:3.11\nCOPY --from=$X /a /a\n")

    def test_global_args_quoted_and_overridden(self) -> None:
        text = "ARG REPO=\"python\" TAG='3.11'\nFROM ${REPO}:${TAG:-3.12}\n"

        assert images(text) == [(2, "FROM", "python:3.11")]
        assert images(text, {"TAG": "3.13"}) == [(2, "FROM", "python:3.13")]

    @pytest.mark.parametrize("word", ["${X#*/}", "${X/a/b}", "$1", "${X?no}", "`${TARGETARCH}`"])
    def test_substitutions_it_cannot_do_exactly_are_refused(self, word: str) -> None:
        with pytest.raises(DockerfileInvalid, match="certainty"):
            image_uses(f"ARG X=python:3.11\nFROM {word}\n")

    @pytest.mark.parametrize(
        "text",
        [
            "FROM python:3.11\nRUN <<EOF\necho\nEOF\n",  # no heredocs in dockerd 20.10
            "FROM python:3.11\nFROB x\n",
            "FROM python:3.11 AS a\nFROM python:3.11 AS A\n",
            "FROM python:3.11 AS 1x\n",
            "FROM python:3.11\nONBUILD FROM evil/image:1\n",
            "FROM python:3.11\x00\nFROM evil/image:1\n",
            "",
        ],
    )
    def test_what_buildkit_versions_read_differently_is_refused(self, text: str) -> None:
        with pytest.raises(DockerfileInvalid):
            parse(text)

    def test_size_limit(self) -> None:
        text = "FROM python:3.11\n" + "# padding\n" * 100

        assert parse(text, max_bytes=len(text)).instructions
        with pytest.raises(DockerfileInvalid, match="bytes"):
            parse(text, max_bytes=len(text) - 1)


class TestSyntaxDirective:
    @pytest.mark.parametrize(
        "text",
        [
            "# syntax=evil/frontend\nFROM python:3.11\n",
            "#!/usr/bin/env buildctl\n# syntax=evil/frontend\nFROM python:3.11\n",
            "// syntax=evil/frontend\nFROM python:3.11\n",
            "#!/x\n//syntax = evil/frontend\nFROM python:3.11\n",
            "# foo=bar\n# syntax=evil/frontend\nFROM python:3.11\n",  # BuildKit v0.8 reads on
            "# escape=`\n# SYNTAX=evil/frontend\nFROM python:3.11\n",
            '{"syntax": "evil/frontend"}',
            ' \n{"SYNTAX": "evil/frontend", "x": 1}',
            "\ufeff  # syntax=evil/frontend\nFROM python:3.11\n",
        ],
    )
    def test_every_form_is_found_and_refused(self, text: str) -> None:
        assert frontend_reference(text) is not None
        with pytest.raises(DockerfileInvalid, match="frontend"):
            parse(text)

    def test_a_comment_mentioning_syntax_later_is_not_a_directive(self) -> None:
        assert frontend_reference("FROM python:3.11\n# syntax=evil/frontend\n") is None


class TestBuildArgs:
    def test_buildkit_arguments_are_refused(self) -> None:
        assert refused_build_args(["BUILDKIT_SYNTAX", "VERSION", "buildkit_cache_mount_ns"]) == [
            "BUILDKIT_SYNTAX",
            "buildkit_cache_mount_ns",
        ]

    def test_buildkit_args_declared_in_the_dockerfile_are_refused(self) -> None:
        text = "FROM python:3.11\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nONBUILD ARG BUILDKIT_X\n"

        assert refused_build_args([], text) == ["BUILDKIT_SBOM_SCAN_STAGE", "BUILDKIT_X"]


class TestMounts:
    def test_csv_semantics(self) -> None:
        mount = parse_mount('"type=cache","target=/a,b","id=x""y",ro,SHARING=locked')

        assert mount.type == "cache"
        assert mount.options == {
            "type": "cache",
            "target": "/a,b",
            "id": 'x"y',
            "ro": None,
            "sharing": "locked",
        }

    def test_type_defaults_to_bind(self) -> None:
        assert parse_mount("target=/x").type == "bind"

    @pytest.mark.parametrize("value", ['type=cache,tar"get=/x', '"type=cache"x', '"open', ""])
    def test_what_go_csv_refuses_is_refused(self, value: str) -> None:
        with pytest.raises(DockerfileInvalid):
            parse_mount(value)


class TestScopeCacheMounts:
    def mounts(self, text: str) -> list[dict[str, str | None]]:
        return [
            dict(parse_mount(flag.removeprefix("--mount=")).options)
            for item in parse(text).instructions
            for flag in item.flags
        ]

    def test_default_id_is_the_target(self) -> None:
        text = "FROM python:3.11\nRUN --mount=type=cache,target=/root/.cache/pip pip install x\n"

        scoped = scope_cache_mounts(text, "owner-a")

        assert self.mounts(scoped) == [
            {"type": "cache", "target": "/root/.cache/pip", "id": "owner-a//root/.cache/pip"}
        ]
        assert parse(scoped).instructions[1].value == ("pip install x",)

    def test_every_spelling_keeps_its_options(self) -> None:
        text = (
            "FROM python:3.11\n"
            'RUN --mount="TYPE=Cache,ID=shared,target=/c,sharing=locked,uid=1000,mode=0755" \\\n'
            "    --mount=type=bind,from=python:3.11,target=/b \\\n"
            "    --mount=type=cache,target=/d,from=python:3.11,source=/tmp \\\n"
            "    true\n"
            "USER 1000\n"
        )

        scoped = scope_cache_mounts(text, "owner-a")

        assert self.mounts(scoped) == [
            {
                "type": "Cache",  # kept as written; BuildKit lower-cases it
                "id": "owner-a/shared",
                "target": "/c",
                "sharing": "locked",
                "uid": "1000",
                "mode": "0755",
            },
            {"type": "bind", "from": "python:3.11", "target": "/b"},
            {
                "type": "cache",
                "target": "/d",
                "from": "python:3.11",
                "source": "/tmp",
                "id": "owner-a//d",
            },
        ]
        # Line numbers are kept: the USER is still on line 6.
        assert [item.line for item in parse(scoped).instructions] == [1, 2, 6]

    def test_json_form_and_other_instructions_unchanged(self) -> None:
        text = 'FROM python:3.11\nRUN --mount=type=cache,target=/c ["sh", "-c", "echo \\"x\\""]\n'

        scoped = parse(scope_cache_mounts(text, "o"))

        assert scoped.instructions[1].json
        assert scoped.instructions[1].value == ("sh", "-c", 'echo "x"')

    def test_a_file_without_cache_mounts_is_returned_as_is(self) -> None:
        text = "FROM python:3.11\r\nRUN --mount=type=bind,target=/x true\r\n"

        assert scope_cache_mounts(text, "o") == text

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("FROM python:3.11\nONBUILD RUN --mount=type=cache,target=/c true\n", "ONBUILD"),
            ('FROM python:3.11\nRUN --mount="type=cache,target=/a b" true\n', "certainty"),
            ("FROM python:3.11\nRUN --mount=type=cache,id=$X,target=/c true\n", "certainty"),
            ("FROM python:3.11\nRUN --mount=type=cache true\n", "neither id nor target"),
        ],
    )
    def test_what_it_cannot_scope_is_refused(self, text: str, message: str) -> None:
        with pytest.raises(DockerfileInvalid, match=message):
            scope_cache_mounts(text, "o")

    def test_the_scope_must_be_plain(self) -> None:
        with pytest.raises(ValueError, match="scope"):
            scope_cache_mounts("FROM python:3.11\n", "a,id=b")


class TestLintCap:
    def test_a_huge_dockerfile_has_a_bounded_report(self) -> None:
        text = "FROM python\n" + "ADD . /app\n" * 5000 + "USER 1\n"

        findings = lint(text)

        assert len(findings) == MAX_FINDINGS + 1
        assert findings[-1].rule == "IB000"
        assert findings[-1].message == f"and {5001 - MAX_FINDINGS} more findings"
