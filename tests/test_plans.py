"""Changing a website's plan carries its rate-limit bucket over."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from realtime_visitors.config import Settings

from .conftest import run_admin

Site = Callable[..., tuple[str, str]]


def remaining(client: TestClient, website_id: str, token: str) -> tuple[int, int]:
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    return int(response.headers["X-RateLimit-Limit"]), int(
        response.headers["X-RateLimit-Remaining"]
    )


def set_plan(settings: Settings, website_id: str, plan: str) -> None:
    run_admin(settings, lambda sites: sites.set_plan(website_id, plan))


def test_an_upgrade_adds_the_difference_of_capacities(
    client: TestClient, make_site: Site, settings: Settings
) -> None:
    website_id, token = make_site("free")
    for _ in range(8):
        remaining(client, website_id, token)
    assert remaining(client, website_id, token) == (100, 91)
    set_plan(settings, website_id, "pro")
    # 91 left of 100, plus the 900 the bigger bucket holds, less this request.
    assert remaining(client, website_id, token) == (1000, 990)


def test_a_downgrade_caps_what_is_left(
    client: TestClient, make_site: Site, settings: Settings
) -> None:
    website_id, token = make_site("pro")
    assert remaining(client, website_id, token) == (1000, 999)
    set_plan(settings, website_id, "free")
    assert remaining(client, website_id, token) == (100, 99)


def test_a_downgrade_keeps_a_smaller_balance(
    client: TestClient, make_site: Site, settings: Settings
) -> None:
    website_id, token = make_site("enterprise")
    set_plan(settings, website_id, "free")  # never read: the free bucket starts full
    assert remaining(client, website_id, token) == (100, 99)
    set_plan(settings, website_id, "pro")
    assert remaining(client, website_id, token) == (1000, 998)
