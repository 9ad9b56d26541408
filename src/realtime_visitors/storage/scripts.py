"""Finds lua/*.lua: the only module that knows the scripts' file names."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import NamedTuple

from .connection import Script


class AdminScripts(NamedTuple):
    site_create: Script
    site_plan: Script
    site_delete: Script
    token_create: Script
    token_revoke: Script


class HotScripts(NamedTuple):
    pageview: Script
    realtime: Script
    breakdown: Script
    history: Script
    live: Script


NAMES = HotScripts._fields + AdminScripts._fields
# Lua has no modules inside Redis: shared functions are pasted in where a script asks.
INCLUDE = "-- include: "


def lua_dir() -> Traversable:
    # An installed wheel carries the scripts inside the package; a checkout (or an
    # editable install) finds them in the repository's top-level lua/ folder.
    packaged = files("realtime_visitors") / "lua"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "lua"


def source(name: str) -> str:
    """A script's text, each `-- include: lib/NAME` line replaced by that file."""
    lines = (lua_dir() / f"{name}.lua").read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(
        source(line[len(INCLUDE) :].strip()) if line.startswith(INCLUDE) else line for line in lines
    )


def hot() -> HotScripts:
    """The request path's scripts, for the pipelined connection (which handles NOSCRIPT)."""
    return HotScripts(*(Script(source(name)) for name in HotScripts._fields))


def admin() -> AdminScripts:
    """The administration scripts, run on the same connection as the request path's:
    it heals NOSCRIPT and follows a cluster's redirections."""
    return AdminScripts(*(Script(source(name)) for name in AdminScripts._fields))
