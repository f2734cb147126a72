"""Private package indexes: registration (credentials encrypted, never returned) and what a build
gets from them.

Scopes: an owner's own indexes, and global ones (the reserved owner `_global`, which no owner name
can be: they start with a letter or digit) that every owner's builds use; an owner's index of the
same name hides the global one. Only admins manage another owner's or the global scope.

What a build gets (two BuildKit secrets, mounted only in the RUN steps that install):
- `package_index_netrc`: a netrc file, one `machine` per index host with credentials. pip (its
  requests) and uv read it through `NETRC`, so index URLs never carry credentials.
- `package_index_env`: a shell file the install steps source, exporting the index URLs:
  uv's `UV_DEFAULT_INDEX` / `UV_INDEX`, pip's `PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL`, `NETRC`.

Resolution (dependency confusion): the `default` index (the owner's, else the global one)
replaces PyPI. Extra indexes come before the default one, and uv's `first-index` strategy (set
explicitly) takes each package from the first index that has it: a name on a private index is
never taken from PyPI. pip merges all its indexes and takes the best version, so with pip only a
`default` index (a mirror that proxies PyPI) protects against confusion; generated builds install
with uv (pip only installs uv itself).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.access.caller import Caller
from core.access.secret_box import SecretBox
from core.access.tokens import check_owner
from core.db import utcnow
from core.errors import Forbidden, ImageBuilderError, InvalidOption
from core.models import PackageIndex

GLOBAL_SCOPE = "_global"
NETRC_SECRET_ID = "package_index_netrc"
ENV_SECRET_ID = "package_index_env"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# netrc tokens are separated by whitespace; quotes and backslashes are read differently by
# Python's netrc and uv's: refused rather than mis-read.
_CREDENTIAL = re.compile(r'^[^\s"\\\x00-\x1f\x7f]{1,1000}$')
_URL_UNSAFE = re.compile(r"[\s'\"\\`$]")


class IndexDoesNotExist(ImageBuilderError):
    status = 404
    code = "index_not_found"
    title = "Package index not found"


@dataclass(frozen=True)
class IndexCredentials:
    username: str
    password: str


@dataclass(frozen=True)
class BuildIndexes:
    """The index configuration of one build (URLs without credentials, netrc entries)."""

    default_url: str | None
    extra_urls: list[str]
    # host -> credentials, at most one per host (netrc matches by host)
    netrc: dict[str, IndexCredentials]

    @property
    def empty(self) -> bool:
        return self.default_url is None and not self.extra_urls and not self.netrc

    @property
    def passwords(self) -> tuple[str, ...]:
        return tuple(c.password for c in self.netrc.values())

    def netrc_text(self) -> str:
        return "".join(
            f"machine {host}\nlogin {c.username}\npassword {c.password}\n\n"
            for host, c in sorted(self.netrc.items())
        )

    def env_text(self, netrc_path: str) -> str:
        """POSIX shell exports for uv and pip (values quoted; URLs were validated)."""
        lines = [f"export NETRC={shlex.quote(netrc_path)}", "export UV_INDEX_STRATEGY=first-index"]
        if self.default_url:
            url = shlex.quote(self.default_url)
            lines.append(f"export UV_DEFAULT_INDEX={url} PIP_INDEX_URL={url}")
        if self.extra_urls:
            urls = shlex.quote(" ".join(self.extra_urls))
            lines.append(f"export UV_INDEX={urls} PIP_EXTRA_INDEX_URL={urls}")
        insecure = sorted(
            {
                urlsplit(u).hostname or ""
                for u in [self.default_url or "", *self.extra_urls]
                if u.startswith("http://")
            }
        )
        if insecure:
            # pip refuses plain-http indexes otherwise (only reachable with index_allow_http).
            lines.append(f"export PIP_TRUSTED_HOST={shlex.quote(' '.join(insecure))}")
        return "\n".join(lines) + "\n"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidOption(
            "an index name is 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with "
            "a letter or digit"
        )
    return name


def check_url(url: str, *, allow_http: bool) -> str:
    """An index URL as pip and uv take it: http(s), a host, no userinfo, query or fragment."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidOption(f"url is not a valid URL: {exc}") from exc
    if parts.scheme not in (("https", "http") if allow_http else ("https",)):
        raise InvalidOption(
            "url must be https:// (plain http sends the credentials in clear; the operator "
            "may allow it with IMAGEBUILDER_INDEX_ALLOW_HTTP)"
            if parts.scheme == "http"
            else "url must be an https:// index URL (such as https://pypi.example.com/simple)"
        )
    if "@" in parts.netloc:
        raise InvalidOption(
            "url must not contain credentials: give them as username and password, which are "
            "stored encrypted and never shown"
        )
    if not parts.hostname or parts.query or parts.fragment or _URL_UNSAFE.search(url):
        raise InvalidOption("url must name a host and have no query, fragment, quotes or spaces")
    if len(url) > 2000:
        raise InvalidOption("url is longer than 2000 characters")
    return url


def usable_credential(username: str, password: str) -> bool:
    """Whether a netrc file can carry this pair as pip and uv read it."""
    return bool(_CREDENTIAL.fullmatch(username) and _CREDENTIAL.fullmatch(password))


def _check_credentials(username: str | None, password: str | None) -> IndexCredentials | None:
    if username is None and password is None:
        return None
    if username is None or password is None:
        raise InvalidOption("give both username and password, or neither")
    for what, value in (("username", username), ("password", password)):
        if not _CREDENTIAL.fullmatch(value):
            raise InvalidOption(
                f"{what} must be 1 to 1000 characters without whitespace, quotes, backslashes "
                "or control characters"
            )
    return IndexCredentials(username, password)


def resolve_scope(caller: Caller, owner: str | None) -> str:
    """The scope a caller manages: its own, or (admins only) any owner's or the global one."""
    if owner is None or owner == caller.owner:
        return caller.owner
    if not caller.admin:
        raise Forbidden("only an admin may manage another owner's or the global package indexes")
    return owner if owner == GLOBAL_SCOPE else check_owner(owner)


def _context(owner: str, name: str) -> str:
    # Binds a ciphertext to its row: moved to another owner or name it no longer decrypts.
    return f"package-index\0{owner}\0{name}"


def put_index(
    session: Session,
    box: SecretBox,
    *,
    owner: str,
    name: str,
    url: str,
    username: str | None,
    password: str | None,
    default: bool,
    allow_http: bool,
) -> PackageIndex:
    """Create or replace an index; a new default index makes the scope's previous one extra."""
    check_name(name)
    check_url(url, allow_http=allow_http)
    credentials = _check_credentials(username, password)
    sealed = (
        box.encrypt(json.dumps(credentials.__dict__), context=_context(owner, name))
        if credentials
        else None
    )
    now = utcnow()
    if default:
        session.execute(
            update(PackageIndex)
            .where(PackageIndex.owner == owner, PackageIndex.name != name)
            .values(is_default=False, updated_at=now)
        )
    row = session.get(PackageIndex, (owner, name))
    if row is None:
        row = PackageIndex(owner=owner, name=name, created_at=now)
        session.add(row)
    row.url = url
    row.is_default = default
    row.credentials = sealed
    row.updated_at = now
    session.flush()
    return row


def list_indexes(session: Session, owner: str) -> Sequence[PackageIndex]:
    """The indexes an owner's builds use: its own and the global ones, by scope then name."""
    scopes = [owner] if owner == GLOBAL_SCOPE else [owner, GLOBAL_SCOPE]
    rows = session.scalars(
        select(PackageIndex).where(PackageIndex.owner.in_(scopes)).order_by(PackageIndex.name)
    ).all()
    own = {row.name for row in rows if row.owner == owner}
    visible = [row for row in rows if row.owner == owner or row.name not in own]
    return sorted(visible, key=lambda row: (row.owner == GLOBAL_SCOPE, row.name))


def delete_index(session: Session, *, owner: str, name: str) -> None:
    row = session.get(PackageIndex, (owner, name))
    if row is None:
        raise IndexDoesNotExist(f"no package index {name!r} in the scope {owner!r}")
    session.delete(row)
    session.flush()


def build_indexes(
    session: Session,
    box: SecretBox,
    owner: str,
    *,
    found: dict[str, IndexCredentials] | None = None,
) -> BuildIndexes:
    """What a build of `owner` installs from. `found`: credentials taken out of the project's
    own files (by host), used where no registered index of that host has credentials."""
    rows = list_indexes(session, owner)
    defaults = [row for row in rows if row.is_default]
    default_url = defaults[0].url if defaults else None  # the owner's sorts first
    extras = [row.url for row in rows if row.url != default_url]
    netrc: dict[str, IndexCredentials] = {}
    for row in rows:
        host = urlsplit(row.url).hostname or ""
        if row.credentials and host not in netrc:
            data = json.loads(box.decrypt(row.credentials, context=_context(row.owner, row.name)))
            netrc[host] = IndexCredentials(data["username"], data["password"])
    for host, credentials in (found or {}).items():
        netrc.setdefault(host, credentials)
    return BuildIndexes(default_url=default_url, extra_urls=extras, netrc=netrc)
