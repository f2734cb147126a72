"""Which numeric user an image's processes would run as, the way the container runtime decides it.

A `USER` of `00`, `+0`, or a name whose /etc/passwd entry has uid 0 is root as much as `root` is;
a check on the spelling misses them. The runtime (moby/sys/user, used by runc) reads the spec as
`user[:group]`: a number (Go's strconv.Atoi: optional sign, decimal digits) is a uid, anything else
a name looked up in the image's /etc/passwd (first entry wins); the group likewise in /etc/group,
defaulting to the user's entry's gid, or 0. The result is passed on as numbers, so the runtime
never looks the names up a second time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOBODY = "65534:65534"
_NUMBER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int

    @property
    def spec(self) -> str:
        return f"{self.uid}:{self.gid}"


class UserNotResolved(Exception):
    """The image names a user or group its own files do not define."""


def _entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _number(text: str) -> int | None:
    return int(text) if _NUMBER.fullmatch(text) else None


def resolve_user(spec: str, passwd: str | None, group: str | None) -> ResolvedUser:
    """The uid and gid `spec` (an image's Config.User) runs as; "" is root. `passwd` and `group`
    are the image's files (None: the image has none)."""
    name, _, group_spec = spec.partition(":")
    if name == "":
        name = "0"
    uid = _number(name)
    entry = None
    for fields in _entries(passwd or ""):
        if len(fields) < 4:
            continue
        if (uid is not None and _number(fields[2]) == uid) or (uid is None and fields[0] == name):
            entry = fields
            break
    if uid is None:
        entry_uid = _number(entry[2]) if entry is not None else None
        if entry_uid is None:
            raise UserNotResolved(f"the user {name!r} is not in the image's /etc/passwd")
        uid = entry_uid
    gid = (_number(entry[3]) if entry is not None else None) or 0
    if group_spec:
        number = _number(group_spec)
        if number is not None:
            gid = number
        else:
            found = next(
                (
                    _number(fields[2])
                    for fields in _entries(group or "")
                    if len(fields) >= 3 and fields[0] == group_spec
                ),
                None,
            )
            if found is None:
                raise UserNotResolved(f"the group {group_spec!r} is not in the image's /etc/group")
            gid = found
    return ResolvedUser(uid, gid)


def needs_image_files(spec: str) -> bool:
    """Whether resolving `spec` reads the image's /etc/passwd or /etc/group: not for `uid:gid`,
    nor for no user at all (root)."""
    if spec == "":
        return False
    name, _, group = spec.partition(":")
    return _number(name) is None or _number(group) is None


def unprivileged_user(spec: str, passwd: str | None, group: str | None) -> tuple[str, str]:
    """The user to run an image's tests and checks as, numeric, and why: the image's own user
    unless that is uid 0 (however spelled) or cannot be resolved; then nobody."""
    try:
        resolved = resolve_user(spec, passwd, group)
    except UserNotResolved as exc:
        return NOBODY, f"{exc}; running as nobody"
    if resolved.uid == 0:
        shown = f"'{spec}'" if spec else "unset"
        return NOBODY, f"the image's user ({shown}) is root (uid 0); running as nobody"
    return resolved.spec, f"the image's user {spec!r} (uid {resolved.uid})"
