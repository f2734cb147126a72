"""core.ids: build ids are "b_" + a ULID, unique and sorted by creation time."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest

from core import ids

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID = re.compile(rf"^[{_CROCKFORD}]{{26}}$")


def decode_millis(ulid: str) -> int:
    """The creation time in milliseconds that the first ten characters of a ULID encode."""
    value = 0
    for char in ulid[:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value


class TestBuildIds:
    def test_is_b_prefix_and_26_crockford_characters(self) -> None:
        build_id = ids.new_build_id()

        assert build_id.startswith("b_")
        assert len(build_id) == 28
        assert _ULID.match(build_id.removeprefix("b_"))

    def test_token_ids_have_their_own_prefix(self) -> None:
        token_id = ids.new_token_id()

        assert token_id.startswith("t_")
        assert _ULID.match(token_id.removeprefix("t_"))

    def test_ids_are_unique(self) -> None:
        made = [ids.new_build_id() for _ in range(10_000)]

        assert len(set(made)) == len(made)

    def test_encodes_the_creation_time(self) -> None:
        before = time.time_ns() // 1_000_000
        build_id = ids.new_build_id()
        after = time.time_ns() // 1_000_000

        assert before <= decode_millis(build_id.removeprefix("b_")) <= after

    def test_ids_sort_by_creation_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Spans a change in every time digit, including the carry across 32**k boundaries.
        instants_ms = [1, 31, 32, 1023, 1024, 1_700_000_000_000, 1_700_000_000_001, 2**48 - 1]
        made: list[str] = []
        for millis in instants_ms:
            clock = SimpleNamespace(time_ns=lambda m=millis: m * 1_000_000)
            monkeypatch.setattr(ids, "time", clock)
            made.append(ids.new_build_id())

        assert sorted(made) == made
        assert [decode_millis(i.removeprefix("b_")) for i in made] == instants_ms

    def test_ids_made_later_sort_later(self) -> None:
        first = ids.new_build_id()
        time.sleep(0.002)
        second = ids.new_build_id()

        assert first < second
