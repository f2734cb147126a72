"""Where the client finds its server and token.

Each setting comes from the first place that has it: the command line flag, the environment
(IMAGEBUILDER_URL, IMAGEBUILDER_TOKEN), the config file, then the default. The config file is
TOML, at $IMAGEBUILDER_CONFIG, else $XDG_CONFIG_HOME/imagebuilder/config.toml, else
~/.config/imagebuilder/config.toml:

    url = "https://builds.example.com"
    token = "ib_..."
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "IMAGEBUILDER_URL"
TOKEN_ENV = "IMAGEBUILDER_TOKEN"
CONFIG_ENV = "IMAGEBUILDER_CONFIG"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Config:
    url: str
    token: str | None
    # Where each value came from ("flag", "environment", a file path, "default"), for messages.
    origins: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def config_path(env: Mapping[str, str]) -> Path:
    """The config file to read (it need not exist)."""
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "imagebuilder" / "config.toml"


def load_config(
    *,
    url: str | None = None,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Config:
    """Resolve the URL and token: flags, then environment, then the config file, then defaults."""
    env = os.environ if env is None else env
    path = path if path is not None else config_path(env)
    file_values, warnings = _read_file(path)
    origins: dict[str, str] = {}

    def pick(name: str, flag: str | None, env_name: str, default: str | None) -> str | None:
        for origin, value in (
            ("flag", flag),
            ("environment", env.get(env_name)),
            (str(path), file_values.get(name)),
        ):
            if value:
                origins[name] = origin
                return value
        origins[name] = "default"
        return default

    chosen_url = pick("url", url, URL_ENV, DEFAULT_URL)
    assert chosen_url is not None
    chosen_token = pick("token", token, TOKEN_ENV, None)
    normalised = normalise_url(chosen_url, origins["url"])
    if chosen_token is not None:
        chosen_token = chosen_token.strip()
        if not _is_token_shaped(chosen_token):
            raise ConfigError(
                f"The token from {origins['token']} must be one word of printable ASCII."
            )
        parts = urlsplit(normalised)
        if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
            warnings.append(
                f"the token is sent over plain http to {normalised}; use https outside localhost"
            )
    return Config(url=normalised, token=chosen_token, origins=origins, warnings=tuple(warnings))


def _is_token_shaped(token: str) -> bool:
    return bool(token) and token.isascii() and token.isprintable() and " " not in token


def normalise_url(url: str, origin: str = "flag") -> str:
    """An http(s) base URL without a trailing slash; ConfigError if it is not one."""
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"The server URL from {origin} must look like http://host:port or https://host, "
            f"got {url!r}."
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"The server URL from {origin} contains credentials; pass the token with --token, "
            f"{TOKEN_ENV} or the config file instead."
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"The server URL from {origin} must not have a query or fragment.")
    return cleaned


def _read_file(path: Path) -> tuple[dict[str, str], list[str]]:
    warnings: list[str] = []
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}, warnings
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc.strerror}.") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"The config file {path} is not valid TOML: {exc}.") from exc
    values: dict[str, str] = {}
    for key in ("url", "token"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"In the config file {path}, {key!r} must be a string.")
        values[key] = value
    unknown = sorted(set(data) - {"url", "token"})
    if unknown:
        warnings.append(f"the config file {path} has unknown keys: {', '.join(unknown)}")
    if "token" in values and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(
            f"the config file {path} holds a token but others can read it; run chmod 600 {path}"
        )
    return values, warnings
