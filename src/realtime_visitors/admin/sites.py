"""Websites and their API tokens: the administration behind the CLI."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..storage.keys import (
    SITE_PATTERN,
    is_valid_website_id,
    site_keys,
    website_id_of_site_key,
    website_pattern,
)
from ..storage.store import Store
from ..storage.tokens import (
    DIGEST_LENGTH,
    TOKEN_ID_PREFIX,
    digest,
    is_public,
    new_public_key,
    new_token,
    new_token_id,
)


class SiteError(Exception):
    """An administration request that cannot be carried out; the message says why."""


# Two kinds the admin API answers with their own status (409, 404), not by message.
class SiteExists(SiteError):
    pass


class NotFound(SiteError):
    """No such website, or no such token of it."""


@dataclass(frozen=True, slots=True)
class Site:
    website_id: str
    name: str
    plan: str
    created_ms: int


SECRET, PUBLIC = "secret", "public"  # the kinds of token


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    created_ms: int
    kind: str = SECRET
    origins: tuple[str, ...] = ()  # a public key's; empty: any origin


@dataclass(frozen=True, slots=True)
class NewToken:
    token: str  # shown once, never stored (a public key too: it is stored as a digest)
    token_id: str
    created_ms: int
    kind: str = SECRET
    origins: tuple[str, ...] = ()


class Sites:
    def __init__(self, store: Store, plans: Mapping[str, int]) -> None:
        self.store = store
        self.plans = plans

    async def create(self, website_id: str | None, name: str, plan: str) -> tuple[Site, NewToken]:
        website_id = website_id or secrets.token_hex(6)
        keys = site_keys(self._checked(website_id))
        self._check_plan(plan)
        token, token_id = new_token(), new_token_id()
        created = int(
            await self.store.admin(
                self.store.scripts.site_create,
                [keys.site],
                [name or website_id, plan, digest(token), token_id],
            )
        )
        if not created:
            raise SiteExists(f"website {website_id!r} already exists")
        site = Site(website_id, name or website_id, plan, created)
        return site, NewToken(token, token_id, created)

    async def all(self) -> list[Site]:
        found: list[Site] = []
        for key in await self.store.call(self._scan(SITE_PATTERN)):
            website_id = website_id_of_site_key(_text(key))
            if not is_valid_website_id(website_id):
                continue
            try:
                found.append(await self.get(website_id))
            except NotFound:
                continue  # deleted since the scan saw it
        return sorted(found, key=lambda site: (site.created_ms, site.website_id))

    async def _scan(self, pattern: str) -> list[bytes | str]:
        # SCAN, not a global index key: every key stays inside its website's slot.
        return [key async for key in self.store.client.scan_iter(match=pattern, count=1000)]

    async def get(self, website_id: str) -> Site:
        fields = await self._fields(website_id)
        return Site(website_id, fields["name"], fields["plan"], int(fields["created"]))

    async def _fields(self, website_id: str) -> dict[str, str]:
        keys = site_keys(self._checked(website_id))
        fields = await self.store.call(self.store.client.hgetall(keys.site))
        if not fields:
            raise NotFound(f"website {website_id!r} not found")
        return {_text(k): _text(v) for k, v in fields.items()}

    async def set_plan(self, website_id: str, plan: str) -> None:
        keys = site_keys(self._checked(website_id))
        self._check_plan(plan)
        # The smallest plan first: site_plan.lua, like the reads, gives its limit to a
        # plan no longer configured.
        plans = sorted(self.plans.items(), key=lambda item: item[1])
        args = [plan, *(str(value) for pair in plans for value in pair)]
        done = await self.store.admin(self.store.scripts.site_plan, [keys.site], args)
        if not done:
            raise NotFound(f"website {website_id!r} not found")

    async def delete(self, website_id: str) -> None:
        keys = site_keys(self._checked(website_id))
        # The per-client counters expire by themselves, but go with the rest.
        counters = await self.store.call(self._scan(website_pattern(website_id)))
        every = dict.fromkeys([*keys.all, *(_text(key) for key in counters)])  # site first
        existed = await self.store.admin(self.store.scripts.site_delete, list(every))
        if not existed:
            raise NotFound(f"website {website_id!r} not found")

    async def create_token(
        self, website_id: str, public: bool = False, origins: Iterable[str] = ()
    ) -> NewToken:
        """A secret API token, or a publishable key (read-only, for web pages) that
        only the given origins may use (any origin when none are given)."""
        keys = site_keys(self._checked(website_id))
        allowed = tuple(dict.fromkeys(origin_of(text) for text in origins))
        if allowed and not public:
            raise SiteError('origins apply to public keys only (--public, or "public": true)')
        kind = PUBLIC if public else SECRET
        token, token_id = new_public_key() if public else new_token(), new_token_id()
        created = int(
            await self.store.admin(
                self.store.scripts.token_create,
                [keys.site, keys.public],
                [digest(token), token_id, kind, " ".join(allowed)],
            )
        )
        if not created:
            raise NotFound(f"website {website_id!r} not found")
        return NewToken(token, token_id, created, kind, allowed)

    async def list_tokens(self, website_id: str) -> list[TokenInfo]:
        fields = await self._fields(website_id)
        public = await self.store.call(self.store.client.hgetall(site_keys(website_id).public))
        infos = []
        for field, value in fields.items():
            if is_token_digest(field):
                token_id, _, created = value.partition(":")
                infos.append(TokenInfo(token_id, int(created)))
        for entry in public.values():
            token_id, created, origins = _text(entry).split(":", 2)
            infos.append(TokenInfo(token_id, int(created), PUBLIC, tuple(origins.split())))
        return sorted(infos, key=lambda info: (info.created_ms, info.token_id))

    async def revoke_token(self, website_id: str, token: str) -> str:
        """Revoke by token id (tok_...) or by the token itself; returns the id revoked.

        Anything but a token id may be the secret: it is looked up by its digest and
        never put in a message.
        """
        keys = site_keys(self._checked(website_id))
        token_id = token
        if not token.startswith(TOKEN_ID_PREFIX):
            token_id = await self._token_id_of(website_id, token)
        done = await self.store.admin(
            self.store.scripts.token_revoke, [keys.site, keys.public], [token_id]
        )
        if not done:
            raise NotFound(f"token {token_id!r} not found for website {website_id!r}")
        return token_id

    async def _token_id_of(self, website_id: str, token: str) -> str:
        # Each token's digest maps to "<token id>:<created ms>[:<origins>]".
        keys = site_keys(website_id)
        value = await self.store.call(
            self.store.client.hget(keys.public if is_public(token) else keys.site, digest(token))
        )
        if value is None:
            raise NotFound(f"no such token for website {website_id!r}")
        return _text(value).partition(":")[0]

    async def current_visitors(self, website_id: str, window_ms: int) -> int:
        """The live count as the API reads it, by the Redis server's clock."""
        # A plain ZCOUNT, not realtime.lua: an admin read spends none of the budget.
        keys = site_keys(self._checked(website_id))
        seconds, micros = await self.store.call(self.store.client.time())
        now_ms = seconds * 1000 + micros // 1000
        count = await self.store.call(
            self.store.client.zcount(keys.visitors, f"({now_ms - window_ms}", "+inf")
        )
        return int(count)

    def _checked(self, website_id: str) -> str:
        if not is_valid_website_id(website_id):
            raise SiteError(
                f"invalid website id {website_id!r}: use 1 to 64 letters, digits, '-', '_' or '.'"
            )
        return website_id

    def _check_plan(self, plan: str) -> None:
        if plan not in self.plans:
            raise SiteError(f"unknown plan {plan!r}: choose one of {', '.join(self.plans)}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def origin_of(text: str) -> str:
    """A web origin as browsers send it: scheme://host[:port], lower case, no path."""
    stripped = text.strip()
    parts = urlsplit(stripped.lower())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or not stripped.isascii()  # browsers send IDN hosts punycoded
        or any(c.isspace() for c in stripped)  # origins are stored space-separated
    ):
        raise SiteError(
            f"not an origin: {text!r}: expected scheme://host[:port], e.g. https://shop.example"
        )
    return f"{parts.scheme}://{parts.netloc}"


def is_token_digest(field: str) -> bool:
    return len(field) == DIGEST_LENGTH and all(c in "0123456789abcdef" for c in field)
