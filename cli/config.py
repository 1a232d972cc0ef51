"""Where `tunectl` finds the API: flags, then environment variables, then a config file.

Each setting is looked up in that order and the first source that has it wins, so a
config file holds a person's usual endpoint and token, a variable overrides it for one
shell, and a flag for one command. The file is TOML at
`platformdirs.user_config_dir("tunectl")/config.toml` (`~/.config/tunectl/config.toml`
on Linux) unless `TUNECTL_CONFIG` or `--config` names another; a missing file is no error.

    endpoint = "tuning.internal.example:443"
    token = "..."
    ca_file = "/etc/ssl/internal-ca.pem"   # any of the three TLS files, or tls = true,
    cert_file = "~/.tunectl/me.pem"        # switches to TLS; cert and key are for
    key_file = "~/.tunectl/me.key"         # mutual TLS
    timeout_s = 30
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from cli.errors import ConfigError

CONFIG_ENV = "TUNECTL_CONFIG"
"""A config file to read instead of the one in the user's config directory."""
MAX_CONFIG_BYTES = 64 * 1024
MAX_TIMEOUT_S = 3600.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class ClientConfig:
    """How to reach the API and who to be there."""

    endpoint: str = "localhost:50051"
    """`host:port` of the API (env TUNECTL_ENDPOINT)."""
    token: str = ""
    """The tenant's bearer token (env TUNECTL_TOKEN)."""
    tls: bool = False
    """TLS with the system's roots, when no TLS file is given (env TUNECTL_TLS)."""
    ca_file: str = ""
    """PEM CA certificates to verify the API by (env TUNECTL_CA_FILE); implies TLS."""
    cert_file: str = ""
    """PEM client certificate for mutual TLS (env TUNECTL_CERT_FILE); implies TLS."""
    key_file: str = ""
    """PEM private key of `cert_file` (env TUNECTL_KEY_FILE)."""
    timeout_s: float = 30.0
    """Deadline of each unary call, in seconds (env TUNECTL_TIMEOUT_S); watches have none."""

    @property
    def uses_tls(self) -> bool:
        return self.tls or bool(self.ca_file or self.cert_file or self.key_file)

    @classmethod
    def from_sources(
        cls, flags: Mapping[str, Any], env: Mapping[str, str], config_path: Path | None
    ) -> ClientConfig:
        """Flags (None: not given) over `TUNECTL_*` variables over the file over defaults."""
        path = config_path or default_path(env)
        values = read_file(path)
        values |= {name: env[var] for name, var in ENV_VARS.items() if env.get(var)}
        values |= {name: value for name, value in flags.items() if value is not None}
        return cls(**{name: _typed(name, value) for name, value in values.items()}).checked()

    def checked(self) -> ClientConfig:
        if not self.endpoint or len(self.endpoint) > 255:
            raise ConfigError("the endpoint must be host:port, at most 255 characters")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ConfigError(f"timeout_s must be above 0 and at most {MAX_TIMEOUT_S:g}")
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError("mutual TLS needs both cert_file and key_file")
        return self


ENV_VARS = {
    "endpoint": "TUNECTL_ENDPOINT",
    "token": "TUNECTL_TOKEN",
    "tls": "TUNECTL_TLS",
    "ca_file": "TUNECTL_CA_FILE",
    "cert_file": "TUNECTL_CERT_FILE",
    "key_file": "TUNECTL_KEY_FILE",
    "timeout_s": "TUNECTL_TIMEOUT_S",
}
_FIELDS = {f.name: f for f in dataclasses.fields(ClientConfig)}


def default_path(env: Mapping[str, str]) -> Path:
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return Path(platformdirs.user_config_dir("tunectl")) / "config.toml"


def read_file(path: Path) -> dict[str, Any]:
    """The file's settings; {} if there is no file. Unknown keys are refused, so a typo
    does not silently leave a setting at its default."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        values = tomllib.loads(raw.decode("utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(unknown)}")
    return values


def _typed(name: str, value: Any) -> Any:
    """`value` (a string from the environment, or TOML's own type) as the field's type."""
    kind = _FIELDS[name].type
    try:
        if kind == "bool":
            return _boolean(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise ConfigError(f"{name}: not a {kind}: {str(value)[:64]!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string")
    return str(Path(value).expanduser()) if name.endswith("_file") else value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(text)
