"""Settings, read once from the environment (RTV_* and REDIS_URL)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

DEFAULT_PLANS: dict[str, int] = {"free": 100, "pro": 1_000, "enterprise": 10_000}

# The schemes redis-py's parse_url (and so storage/connection.py) understands.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)
MAX_PORT = 65535

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MIN_ADMIN_TOKEN = 16
LOG_FORMATS = ("text", "json")
SWITCH_VALUES = {
    **dict.fromkeys(("1", "on", "true", "yes"), True),
    **dict.fromkeys(("0", "off", "false", "no"), False),
}
# What an `Authorization: Bearer` header can carry (RFC 6750's token68): a token
# outside it could never be sent, so it is refused here rather than at every call.
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class ConfigError(ValueError):
    """An RTV_* variable holds a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    window_seconds: int = 180
    plans: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PLANS))
    cors_origins: tuple[str, ...] = ("*",)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    data_dir: Path = Path(".data")
    host: str = "127.0.0.1"
    port: int = 8000
    redis_timeout: float = 0.5
    max_visitors_per_ip: int = 100
    max_auth_failures: int = 10
    # Reads by publishable key per client address per minute, per process (0: no limit).
    public_reads_per_minute: int = 60
    # Unset: no admin API. A secret: kept out of the dataclass repr.
    admin_token: str | None = field(default=None, repr=False)
    # Unset: no /metrics (404). A secret, as the admin token.
    metrics_token: str | None = field(default=None, repr=False)
    log_format: str = "text"  # one of LOG_FORMATS
    access_log: bool = True

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000

    def store_description(self) -> str:
        """Which store the commands use, and the variable that chose it; no password."""
        if self.redis_url:
            return f"{hide_password(self.redis_url)} (REDIS_URL)"
        return f"the embedded store at {self.data_dir.resolve()} (RTV_DATA_DIR)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            redis_url=parse_redis_url(env.get("REDIS_URL", "")),
            window_seconds=_positive_int(env, "RTV_WINDOW_SECONDS", 180),
            plans=parse_plans(env.get("RTV_PLANS", "")),
            cors_origins=_csv(env.get("RTV_CORS_ORIGINS", "*")) or ("*",),
            trusted_proxies=parse_networks(env.get("RTV_TRUSTED_PROXIES", "")),
            data_dir=Path(env.get("RTV_DATA_DIR") or ".data"),
            host=env.get("RTV_HOST") or "127.0.0.1",
            port=_port(env, "RTV_PORT", 8000),
            redis_timeout=_positive_float(env, "RTV_REDIS_TIMEOUT", 0.5),
            max_visitors_per_ip=_whole(env, "RTV_MAX_VISITORS_PER_IP", 100),
            max_auth_failures=_positive_int(env, "RTV_MAX_AUTH_FAILURES", 10),
            public_reads_per_minute=_whole(env, "RTV_PUBLIC_READS_PER_MINUTE", 60),
            admin_token=parse_admin_token(env.get("RTV_ADMIN_TOKEN", "")),
            metrics_token=parse_admin_token(env.get("RTV_METRICS_TOKEN", ""), "RTV_METRICS_TOKEN"),
            log_format=_choice(env, "RTV_LOG_FORMAT", LOG_FORMATS),
            access_log=_switch(env, "RTV_ACCESS_LOG", True),
        )


def parse_redis_url(text: str) -> str | None:
    """REDIS_URL, checked here so that a typo is one line naming it, not a traceback."""
    if not text:
        return None
    scheme, sep, _ = text.partition("://")
    if not sep or scheme not in REDIS_SCHEMES:
        raise ConfigError(
            "REDIS_URL must start with redis://, rediss://, unix:// or, for a cluster, "
            "redis+cluster:// (e.g. redis://localhost:6379/0), "
            f"got {hide_password(text)!r}"
        )
    if scheme in CLUSTER_SCHEMES:
        return parse_cluster_url(text)
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # an unclosed IPv6 bracket, say
        raise ConfigError(f"REDIS_URL: {exc}, got {hide_password(text)!r}") from exc
    if not _port_is_valid(parts):
        raise ConfigError(
            f"REDIS_URL: the port must be a number from 1 to {MAX_PORT}, "
            f"got {hide_password(text)!r}"
        )
    if scheme == "unix" and not parts.path:
        raise ConfigError(
            "REDIS_URL: a unix:// URL needs the socket's path (unix:///run/redis.sock), "
            f"got {hide_password(text)!r}"
        )
    return text


def parse_cluster_url(text: str) -> str:
    """redis+cluster://[user:password@]host:port[,host:port...]: the seed nodes."""
    scheme, _, rest = text.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    if "/" in hosts.rstrip("/") or "?" in hosts:
        raise ConfigError(
            "REDIS_URL: a cluster has no database number or options, only seed nodes "
            f"(redis+cluster://host:port,host:port), got {hide_password(text)!r}"
        )
    seeds = [seed.strip() for seed in hosts.rstrip("/").split(",") if seed.strip()]
    for seed in seeds or [""]:
        try:
            parts = urlsplit(f"redis://{seed}")
        except ValueError:  # an unclosed IPv6 bracket, say
            parts = urlsplit("redis://")
        if not parts.hostname or not _port_is_valid(parts) or parts.port is None:
            raise ConfigError(
                "REDIS_URL: each seed node of a cluster is host:port with a port from 1 to "
                f"{MAX_PORT} (redis+cluster://10.0.0.1:6379,10.0.0.2:6379), "
                f"got {hide_password(text)!r}"
            )
    return f"{scheme}://{credentials}{at}{','.join(seeds)}"


def _port_is_valid(parts: SplitResult) -> bool:
    try:
        port = parts.port  # None when absent; ValueError when not a number or > 65535
    except ValueError:
        return False
    return port != 0


def hide_password(url: str) -> str:
    """The URL with its password as ***, fit for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    # The last '@' ends the credentials even when the password holds an unescaped
    # '/' or '@' that would throw urlsplit off; a user name cannot hold ':'.
    credentials, at, place = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = credentials.partition(":")
    hidden = f"{user}:***" if colon else "***"
    return f"{scheme}{sep}{hidden}@{place}"


def parse_plans(text: str) -> dict[str, int]:
    """`free=100,pro=1000` overrides or adds plans; unnamed plans keep their defaults."""
    plans = dict(DEFAULT_PLANS)
    for item in _csv(text):
        name, sep, limit = item.partition("=")
        if not sep or not name.strip().isidentifier() or not limit.strip().isdigit():
            raise ConfigError(f"RTV_PLANS: expected name=requests_per_hour, got {item!r}")
        if int(limit) < 1:
            raise ConfigError(f"RTV_PLANS: the limit of {name!r} must be at least 1")
        plans[name.strip()] = int(limit)
    return plans


def parse_admin_token(text: str, name: str = "RTV_ADMIN_TOKEN") -> str | None:
    """An operator's Bearer token (RTV_ADMIN_TOKEN, RTV_METRICS_TOKEN), or None: unset."""
    if not text:
        return None
    # The message never quotes the value: it is a secret, even when refused.
    if len(text) < MIN_ADMIN_TOKEN:
        raise ConfigError(f"{name} must be at least {MIN_ADMIN_TOKEN} characters")
    if not _TOKEN68.fullmatch(text):
        raise ConfigError(f"{name} may hold only letters, digits and - . _ ~ + / (then = padding)")
    return text


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _csv(text))
    except ValueError as exc:
        raise ConfigError(f"RTV_TRUSTED_PROXIES: {exc}") from exc


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = _positive_int(env, name, default)
    if port > MAX_PORT:
        raise ConfigError(f"{name} must be a port number from 1 to {MAX_PORT}, got {port}")
    return port


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.strip().isdigit():
        raise ConfigError(f"{name} must be a whole number (0 turns it off), got {raw!r}")
    return int(raw)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, the first by default."""
    raw = env.get(name)
    if not raw:
        return choices[0]
    if raw.strip().lower() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw.strip().lower()


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if not raw:
        return default
    value = raw.strip().lower()
    if value not in SWITCH_VALUES:
        raise ConfigError(f"{name} must be 1 or 0 (on or off), got {raw!r}")
    return SWITCH_VALUES[value]


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value
