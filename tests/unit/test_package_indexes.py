"""core.access.package_indexes and core.access.secret_box: validation, the files a build gets,
encryption."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from core.access.caller import Caller
from core.access.package_indexes import (
    GLOBAL_SCOPE,
    BuildIndexes,
    IndexCredentials,
    check_name,
    check_url,
    resolve_scope,
)
from core.access.secret_box import KEY_FILE, SecretBox, SecretUnreadable, secret_box
from core.errors import Forbidden, InvalidOption
from tests.conftest import test_settings


class TestCheckUrl:
    def test_accepts_an_https_index(self) -> None:
        assert check_url("https://pypi.example.com/simple/", allow_http=False)

    @pytest.mark.parametrize(
        "url",
        [
            "https://alice:secret@pypi.example.com/simple",
            "http://pypi.example.com/simple",
            "ftp://pypi.example.com/simple",
            "https:///simple",
            "https://pypi.example.com/simple?token=x",
            "https://pypi.example.com/simple'; touch /x; '",
            "https://pypi.example.com:99999/simple",
        ],
    )
    def test_refuses(self, url: str) -> None:
        with pytest.raises(InvalidOption):
            check_url(url, allow_http=False)

    def test_plain_http_only_when_allowed(self) -> None:
        assert check_url("http://10.0.0.5:8080/simple/", allow_http=True)

    def test_credentials_in_the_url_are_refused_with_a_hint(self) -> None:
        with pytest.raises(InvalidOption, match="username and password"):
            check_url("https://a:b@host.example/simple", allow_http=False)

    @pytest.mark.parametrize("name", ["", "Corp", "-x", "a" * 65, "a/b"])
    def test_refuses_bad_names(self, name: str) -> None:
        with pytest.raises(InvalidOption):
            check_name(name)


class TestScope:
    def test_an_owner_manages_its_own(self) -> None:
        assert resolve_scope(Caller("alice"), None) == "alice"
        assert resolve_scope(Caller("alice"), "alice") == "alice"

    @pytest.mark.parametrize("owner", ["bob", GLOBAL_SCOPE])
    def test_only_admins_manage_other_scopes(self, owner: str) -> None:
        with pytest.raises(Forbidden):
            resolve_scope(Caller("alice"), owner)
        assert resolve_scope(Caller("root", admin=True), owner) == owner

    def test_an_admin_cannot_name_an_invalid_owner(self) -> None:
        with pytest.raises(InvalidOption):
            resolve_scope(Caller("root", admin=True), "_other")


def _source(path: Path, *commands: str) -> str:
    """What `sh` sees after sourcing `path` (the install steps' way of reading it)."""
    script = f". {path}; " + "; ".join(commands)
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


class TestBuildFiles:
    indexes = BuildIndexes(
        default_url="https://mirror.example.com/simple",
        extra_urls=["https://private.example.com/simple", "http://10.0.0.5:8080/simple/"],
        netrc={"private.example.com": IndexCredentials("ci", "t0ken#x")},
    )

    def test_env_exports_urls_for_uv_and_pip(self, tmp_path: Path) -> None:
        env = tmp_path / "env"
        env.write_text(self.indexes.env_text("/run/secrets/package_index_netrc"))
        shown = _source(
            env,
            'echo "$UV_DEFAULT_INDEX|$PIP_INDEX_URL"',
            'echo "$UV_INDEX|$PIP_EXTRA_INDEX_URL"',
            'echo "$UV_INDEX_STRATEGY|$NETRC|$PIP_TRUSTED_HOST"',
        ).splitlines()
        mirror = "https://mirror.example.com/simple"
        extras = "https://private.example.com/simple http://10.0.0.5:8080/simple/"
        assert shown == [
            f"{mirror}|{mirror}",
            f"{extras}|{extras}",
            "first-index|/run/secrets/package_index_netrc|10.0.0.5",
        ]
        assert "t0ken" not in env.read_text()

    def test_netrc_is_read_back_by_python(self, tmp_path: Path) -> None:
        import netrc

        path = tmp_path / "netrc"
        path.write_text(self.indexes.netrc_text())
        path.chmod(0o600)
        assert netrc.netrc(str(path)).authenticators("private.example.com") == (
            "ci",
            "",
            "t0ken#x",
        )

    def test_no_index_is_empty(self) -> None:
        assert BuildIndexes(None, [], {}).empty
        assert not self.indexes.empty


class TestSecretBox:
    def test_round_trip_bound_to_its_context(self) -> None:
        box = SecretBox(b"k" * 32)
        sealed = box.encrypt("hunter2", context="alice/corp")
        assert "hunter2" not in sealed
        assert box.decrypt(sealed, context="alice/corp") == "hunter2"
        with pytest.raises(SecretUnreadable):
            box.decrypt(sealed, context="bob/corp")
        with pytest.raises(SecretUnreadable):
            SecretBox(b"x" * 32).decrypt(sealed, context="alice/corp")

    def test_each_encryption_differs(self) -> None:
        box = SecretBox(b"k" * 32)
        assert box.encrypt("same", context="c") != box.encrypt("same", context="c")

    def test_development_key_file_is_private_and_stable(self, tmp_path: Path) -> None:
        settings = test_settings(tmp_path / "data")
        sealed = secret_box(settings).encrypt("v", context="c")
        key = settings.data_dir / KEY_FILE
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert secret_box(settings).decrypt(sealed, context="c") == "v"

    def test_the_setting_wins_over_the_key_file(self, tmp_path: Path) -> None:
        settings = test_settings(tmp_path / "data", secret_key=SecretStr("s" * 40))
        sealed = secret_box(settings).encrypt("v", context="c")
        assert not (settings.data_dir / KEY_FILE).exists()
        assert SecretBox(b"s" * 40).decrypt(sealed, context="c") == "v"


class TestSettings:
    def test_production_needs_a_secret_key(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="IMAGEBUILDER_SECRET_KEY"):
            test_settings(
                tmp_path, environment="production", database_url="postgresql+psycopg://x/y"
            )

    @pytest.mark.parametrize("key", ["short", "password", "changeme"])
    def test_refuses_a_weak_key(self, tmp_path: Path, key: str) -> None:
        with pytest.raises(ValidationError, match="IMAGEBUILDER_SECRET_KEY"):
            test_settings(tmp_path, secret_key=SecretStr(key))


class TestSecretFiles:
    def test_a_build_secret_file_is_private_from_its_creation(self, tmp_path: Path) -> None:
        from worker.build_secrets import private_file

        path = private_file(tmp_path / "netrc", "machine h\nlogin u\npassword p\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().endswith("password p\n")
        with pytest.raises(FileExistsError):
            private_file(path, "replaced")  # never writes through an existing file or link
