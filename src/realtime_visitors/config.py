"""Settings, read once from the environment (RTV_* and REDIS_URL)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PLANS: dict[str, int] = {"free": 100, "pro": 1_000, "enterprise": 10_000}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            window_seconds=_positive_int(env, "RTV_WINDOW_SECONDS", 180),
            plans=parse_plans(env.get("RTV_PLANS", "")),
            cors_origins=_csv(env.get("RTV_CORS_ORIGINS", "*")) or ("*",),
            trusted_proxies=parse_networks(env.get("RTV_TRUSTED_PROXIES", "")),
            data_dir=Path(env.get("RTV_DATA_DIR") or ".data"),
            host=env.get("RTV_HOST") or "127.0.0.1",
            port=_positive_int(env, "RTV_PORT", 8000),
            redis_timeout=_positive_float(env, "RTV_REDIS_TIMEOUT", 0.5),
            max_visitors_per_ip=_whole(env, "RTV_MAX_VISITORS_PER_IP", 100),
            max_auth_failures=_positive_int(env, "RTV_MAX_AUTH_FAILURES", 10),
        )


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


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.strip().isdigit():
        raise ConfigError(f"{name} must be a whole number (0 turns it off), got {raw!r}")
    return int(raw)


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
