"""core.dockerfile.image_user: root is root however the image spells it."""

from __future__ import annotations

import pytest

from core.dockerfile.image_user import (
    NOBODY,
    ResolvedUser,
    UserNotResolved,
    needs_image_files,
    resolve_user,
    unprivileged_user,
)

PASSWD = """root:x:0:0:root:/root:/bin/sh
toor:x:0:0:another root:/root:/bin/sh
app:x:1000:1000::/home/app:/bin/sh
1001:x:0:0:a name that looks like a uid:/:/bin/sh
"""
GROUP = """root:x:0:
app:x:1000:
staff:x:50:
"""


class TestResolveUser:
    @pytest.mark.parametrize("spec", ["", "0", "00", "+0", "-0", "root", "toor", "0:0", "root:app"])
    def test_uid_zero_in_every_spelling(self, spec: str) -> None:
        assert resolve_user(spec, PASSWD, GROUP).uid == 0

    def test_a_name_resolves_through_the_images_passwd(self) -> None:
        assert resolve_user("app", PASSWD, GROUP) == ResolvedUser(1000, 1000)
        assert resolve_user("app:staff", PASSWD, GROUP) == ResolvedUser(1000, 50)
        assert resolve_user("app:7", PASSWD, GROUP) == ResolvedUser(1000, 7)

    def test_a_number_is_a_uid_even_when_a_name_looks_like_it(self) -> None:
        # The runtime treats a numeric user as a uid: entry "1001" (uid 0) is not what it runs.
        assert resolve_user("1001", PASSWD, GROUP) == ResolvedUser(1001, 0)

    def test_an_unknown_name_or_group_is_not_resolved(self) -> None:
        with pytest.raises(UserNotResolved):
            resolve_user("ghost", PASSWD, GROUP)
        with pytest.raises(UserNotResolved):
            resolve_user("app:ghosts", PASSWD, GROUP)
        with pytest.raises(UserNotResolved):
            resolve_user("app", None, None)


class TestNeedsImageFiles:
    @pytest.mark.parametrize(
        ("spec", "needed"),
        [("10001:10001", False), ("10001", True), ("app:1", True), ("", False), ("0:app", True)],
    )
    def test_only_numbers_on_both_sides_need_no_files(self, spec: str, needed: bool) -> None:
        assert needs_image_files(spec) is needed


class TestUnprivilegedUser:
    @pytest.mark.parametrize("spec", ["", "00", "+0", "toor", "ghost"])
    def test_root_or_unknown_runs_as_nobody(self, spec: str) -> None:
        user, why = unprivileged_user(spec, PASSWD, GROUP)
        assert user == NOBODY
        assert why

    def test_the_images_own_user_is_kept_as_numbers(self) -> None:
        assert unprivileged_user("app", PASSWD, GROUP)[0] == "1000:1000"
