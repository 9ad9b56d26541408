"""Where a pageview was, from its url, referrer and client address: pure logic."""

from __future__ import annotations

import re

import pytest

from realtime_visitors.tracking.where import MAX_PATH, country_of, locate, page_of, source_of


@pytest.mark.parametrize(
    ("url", "page"),
    [
        ("https://shop.example/pricing?plan=pro#faq", "/pricing"),
        ("https://shop.example", "/"),
        ("https://shop.example/a%7eb/%c3%a9", "/a~b/%C3%A9"),  # unreserved decoded, hex upper
        ("https://shop.example/a%2fb", "/a%2Fb"),  # an escaped "/" is not a "/"
        ("https://shop.example/café x", "/caf%C3%A9%20x"),
        ("https://shop.example/100%", "/100%25"),  # a stray "%" escaped
        ("/relative/path", "/relative/path"),
        ("pricing", "/pricing"),
        ("", "(unknown)"),
        (None, "(unknown)"),
        ("http://[::1", "(unknown)"),  # unparseable
    ],
)
def test_page_of(url: str | None, page: str) -> None:
    assert page_of(url) == page


def test_long_paths_are_cut_to_256_bytes_between_escapes() -> None:
    assert page_of("https://x/" + "a" * 1000) == "/" + "a" * (MAX_PATH - 1)
    cut = page_of("https://x/" + "é" * 200)
    assert len(cut) <= MAX_PATH
    assert re.fullmatch(r"(%[0-9A-F]{2}|[^%])*", cut)  # never half an escape
    assert page_of("https://x/" + "é" * 200 + "?q") == cut


@pytest.mark.parametrize(
    ("referrer", "source"),
    [
        ("https://www.google.com/search?q=x", "google.com"),
        ("https://News.Example:8443/item", "news.example"),
        ("https://shop.example/blog", "direct"),  # the site itself
        ("https://www.shop.example/", "direct"),
        ("", "direct"),
        (None, "direct"),
        ("not a url", "direct"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
    ],
)
def test_source_of(referrer: str | None, source: str) -> None:
    assert source_of(referrer, "shop.example") == source


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("8.8.8.8", "US"),
        ("81.2.69.160", "GB"),
        ("2a00:1450:4001::1", "IE"),
        ("::ffff:81.2.69.160", "GB"),  # IPv4 on a dual-stack socket
        ("10.1.2.3", "unknown"),
        ("192.168.0.1", "unknown"),
        ("127.0.0.1", "unknown"),
        ("::1", "unknown"),
        ("fd00::1", "unknown"),
        ("", "unknown"),
        ("testclient", "unknown"),
    ],
)
def test_country_of(ip: str, country: str) -> None:
    assert country_of(ip) == country


def test_locate_compares_the_referrer_with_the_pages_own_host() -> None:
    where = locate("https://www.shop.example/p?x", "https://shop.example/", "8.8.8.8")
    assert where == ("/p", "direct", "US")
