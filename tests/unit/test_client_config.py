"""client.config: flags over environment over config file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.config import DEFAULT_URL, ConfigError, config_path, load_config


def config_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


class TestPrecedence:
    def test_defaults_without_anything(self, tmp_path: Path) -> None:
        config = load_config(env={}, path=tmp_path / "missing.toml")

        assert (config.url, config.token) == (DEFAULT_URL, None)
        assert config.origins == {"url": "default", "token": "default"}

    def test_file_over_defaults(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, 'url = "https://file.example"\ntoken = "t-file"\n')

        config = load_config(env={}, path=path)

        assert (config.url, config.token) == ("https://file.example", "t-file")
        assert config.origins == {"url": str(path), "token": str(path)}

    def test_environment_over_file(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, 'url = "https://file.example"\ntoken = "t-file"\n')
        env = {"IMAGEBUILDER_URL": "https://env.example/", "IMAGEBUILDER_TOKEN": "t-env"}

        config = load_config(env=env, path=path)

        assert (config.url, config.token) == ("https://env.example", "t-env")

    def test_flags_over_environment(self, tmp_path: Path) -> None:
        env = {"IMAGEBUILDER_URL": "https://env.example", "IMAGEBUILDER_TOKEN": "t-env"}

        config = load_config(
            url="https://flag.example", token="t-flag", env=env, path=tmp_path / "none"
        )

        assert (config.url, config.token) == ("https://flag.example", "t-flag")
        assert config.origins == {"url": "flag", "token": "flag"}

    def test_each_setting_is_resolved_on_its_own(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, 'token = "t-file"\n')

        config = load_config(url="https://flag.example", env={}, path=path)

        assert (config.url, config.token) == ("https://flag.example", "t-file")

    def test_empty_environment_values_count_as_unset(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, 'token = "t-file"\n')

        config = load_config(env={"IMAGEBUILDER_TOKEN": "", "IMAGEBUILDER_URL": ""}, path=path)

        assert (config.url, config.token) == (DEFAULT_URL, "t-file")


class TestConfigPath:
    def test_explicit_path_then_xdg_then_home(self) -> None:
        assert config_path({"IMAGEBUILDER_CONFIG": "/etc/ib.toml"}) == Path("/etc/ib.toml")
        assert config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/imagebuilder/config.toml")
        assert config_path({"HOME": "/home/u"}) == Path("/home/u/.config/imagebuilder/config.toml")

    def test_load_reads_the_path_from_the_environment(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, 'url = "http://10.0.0.5:8000"\n')

        assert load_config(env={"IMAGEBUILDER_CONFIG": str(path)}).url == "http://10.0.0.5:8000"


class TestValidation:
    @pytest.mark.parametrize(
        "url",
        ["ftp://host", "host:8000", "http://", "http://user:pw@host", "http://host/?q=1"],
    )
    def test_refuses_unusable_urls(self, tmp_path: Path, url: str) -> None:
        with pytest.raises(ConfigError, match="URL"):
            load_config(url=url, env={}, path=tmp_path / "none")

    def test_keeps_a_path_prefix(self, tmp_path: Path) -> None:
        config = load_config(url="https://host/imagebuilder/", env={}, path=tmp_path / "none")

        assert config.url == "https://host/imagebuilder"

    @pytest.mark.parametrize("token", ["two words", "line\nbreak", "caf\u00e9"])
    def test_refuses_tokens_that_cannot_be_a_header(self, tmp_path: Path, token: str) -> None:
        with pytest.raises(ConfigError, match="token"):
            load_config(token=token, env={}, path=tmp_path / "none")

    def test_invalid_toml_and_wrong_types_are_errors(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(env={}, path=config_file(tmp_path, "url = \n"))
        with pytest.raises(ConfigError, match="must be a string"):
            load_config(env={}, path=config_file(tmp_path, "token = 5\n"))


class TestWarnings:
    def test_warns_about_a_token_file_others_can_read(self, tmp_path: Path) -> None:
        path = config_file(tmp_path, 'token = "t"\n', mode=0o644)

        config = load_config(env={}, path=path)

        assert any("chmod 600" in warning for warning in config.warnings)

    def test_warns_about_a_token_over_plain_http_to_another_host(self, tmp_path: Path) -> None:
        remote = load_config(url="http://builds.example", token="t", env={}, path=tmp_path / "n")
        local = load_config(url="http://127.0.0.1:8000", token="t", env={}, path=tmp_path / "n")

        assert any("plain http" in warning for warning in remote.warnings)
        assert local.warnings == ()

    def test_warns_about_unknown_keys(self, tmp_path: Path) -> None:
        config = load_config(env={}, path=config_file(tmp_path, 'uri = "x"\n'))

        assert any("unknown keys: uri" in warning for warning in config.warnings)
