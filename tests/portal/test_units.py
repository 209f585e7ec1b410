"""Plain functions of the portal: tokens, entry signatures, addresses, languages, colours, settings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from guestgate.config import Settings
from guestgate.portal import clients, i18n, theme
from guestgate.portal.config import PortalConfig, parse_proxies
from guestgate.portal.entry_signing import entry_query, entry_signature_valid, site_key, site_keys
from guestgate.portal.service import normalize_code
from guestgate.portal.tokens import (
    GuestIdentity,
    StatusRef,
    TokenExpired,
    TokenInvalid,
    TokenSealer,
    derive_key,
)
from tests.utils.settings import TEST_KEYS, make_settings


def _settings(**overrides: object) -> Settings:
    return make_settings("sqlite:///unused.db", Path("unused"), **overrides)


IDENTITY = GuestIdentity("site", "instance", "10.0.0.1", "AA:BB:CC:DD:EE:FF", "http://x/", "10.0.0.1")
NOW = 1_800_000_000


def test_a_sealed_identity_opens_to_itself_until_it_expires() -> None:
    sealer = TokenSealer([derive_key(TEST_KEYS["encryption_key"])])
    token = sealer.seal_guest(IDENTITY, expires=NOW + 60)
    assert sealer.open_guest(token, now=NOW + 59) == IDENTITY
    with pytest.raises(TokenExpired) as caught:
        sealer.open_guest(token, now=NOW + 60)
    assert caught.value.claims["s"] == "site"


def test_tokens_are_encrypted_and_never_repeat() -> None:
    sealer = TokenSealer([derive_key(TEST_KEYS["encryption_key"])])
    first, second = (sealer.seal_guest(IDENTITY, expires=NOW) for _ in range(2))
    assert first != second
    raw = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4))
    assert b"10.0.0.1" not in raw and b"instance" not in raw


def test_a_token_of_one_kind_does_not_open_as_another() -> None:
    sealer = TokenSealer([derive_key(TEST_KEYS["encryption_key"])])
    status = sealer.seal_status(StatusRef("session", "site"), expires=NOW + 60)
    assert sealer.open_status(status, now=NOW) == StatusRef("session", "site")
    with pytest.raises(TokenInvalid):
        sealer.open_guest(status, now=NOW)


@pytest.mark.parametrize("token", ["", "!!!!", "AAAA", "é", "a" * 5000])
def test_garbage_tokens_are_invalid(token: str) -> None:
    with pytest.raises(TokenInvalid):
        TokenSealer([b"k" * 32]).open_guest(token, now=NOW)


def test_tokens_of_the_previous_encryption_key_still_open_during_rotation() -> None:
    old_key = TEST_KEYS["encryption_key"]
    new_key = base64.urlsafe_b64encode(b"n" * 32).decode()
    old = TokenSealer.from_settings(_settings())
    token = old.seal_guest(IDENTITY, expires=NOW + 60)
    rotated = _settings(
        encryption_key=SecretStr(new_key),
        encryption_key_previous=SecretStr(old_key),
    )
    assert TokenSealer.from_settings(rotated).open_guest(token, now=NOW) == IDENTITY
    fresh = TokenSealer.from_settings(rotated).seal_guest(IDENTITY, expires=NOW + 60)
    with pytest.raises(TokenInvalid):
        old.open_guest(fresh, now=NOW)


def test_the_token_key_is_not_the_encryption_key() -> None:
    key = derive_key(TEST_KEYS["encryption_key"])
    assert len(key) == 32 and key != base64.urlsafe_b64decode(TEST_KEYS["encryption_key"])


def test_site_keys_differ_per_site_and_per_signing_key() -> None:
    assert site_key("a" * 32, "site-1") != site_key("a" * 32, "site-2")
    assert site_key("a" * 32, "site-1") != site_key("b" * 32, "site-1")
    assert len(site_key("a" * 32, "site-1")) == 32


def test_an_entry_query_verifies_with_the_current_or_previous_key() -> None:
    settings = _settings()
    query = entry_query(
        settings, site_id="s", ip="10.0.0.1", mac=None, orig=None, now=datetime.fromtimestamp(NOW, UTC)
    )
    assert query == {"site": "s", "ip": "10.0.0.1", "ts": str(NOW), "sig": query["sig"]}
    rotated = _settings(
        signing_key=SecretStr("n" * 40),
        signing_key_previous=SecretStr(TEST_KEYS["signing_key"]),
    )
    args = {"site_id": "s", "ip": "10.0.0.1", "mac": None, "orig": None, "ts": str(NOW)}
    assert entry_signature_valid(site_keys(rotated, "s"), query["sig"].upper(), **args)  # type: ignore[arg-type]
    assert not entry_signature_valid(site_keys(rotated, "s")[:1], query["sig"], **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("10.0.0.256", None),
        ("testclient", None),
        ("", None),
        (None, None),
        ("1" * 100, None),
    ],
)
def test_ip_addresses_are_canonical(value: str | None, expected: str | None) -> None:
    assert clients.parse_ip(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:FF"),
        ("AA-BB-CC-DD-EE-FF", "AA:BB:CC:DD:EE:FF"),
        ("aabb.ccdd.eeff", "AA:BB:CC:DD:EE:FF"),
        ("aa:bb:cc:dd:ee", None),
        ("gg:bb:cc:dd:ee:ff", None),
        ("", None),
    ],
)
def test_mac_addresses_are_canonical(value: str, expected: str | None) -> None:
    assert clients.parse_mac(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://example.com/", "http://example.com/"),
        ("HTTPS://example.com/a?b=1", "HTTPS://example.com/a?b=1"),
        ("javascript:alert(1)", None),
        ("data:text/html,x", None),
        ("//example.com/", None),
        ("/relative", None),
        ("http://exa mple.com/", None),
        ("http://example.com/\r\nSet-Cookie:x", None),
        ("http://example.com/" + "a" * 3000, None),
        (None, None),
    ],
)
def test_only_plain_http_urls_are_kept_as_the_original_url(value: str | None, expected: str | None) -> None:
    assert clients.safe_orig(value) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.1.1.1", "6.6.6.6", "10.1.1.1"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "6.6.6.6, 10.0.0.9", "10.0.0.9"),
        ("127.0.0.1", "10.0.0.9, 127.0.0.2", "10.0.0.9"),
        ("127.0.0.1", "garbage", None),
    ],
)
def test_the_forwarded_address_is_read_right_to_left_past_trusted_proxies(
    peer: str, forwarded: str | None, expected: str | None
) -> None:
    assert clients.client_address(peer, forwarded, parse_proxies("127.0.0.0/8")) == expected


def test_trusted_proxies_parse_from_a_string_or_a_list() -> None:
    assert [str(n) for n in parse_proxies("127.0.0.1, 10.0.0.0/8")] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert [str(n) for n in parse_proxies(["::1"])] == ["::1/128"]
    assert parse_proxies("") == ()
    with pytest.raises(ValueError, match="GUESTGATE_PORTAL_TRUSTED_PROXIES"):
        parse_proxies("nonsense")


def test_the_portal_takes_its_limits_from_the_settings() -> None:
    config = PortalConfig.from_settings(_settings())
    assert config.token_ttl_seconds == 1800
    assert config.throttle.client_max_failures == 5 and config.throttle.site_max_failures == 50
    assert config.trusted_proxies == ()
    changed = _settings().model_copy(
        update={"portal_client_max_failures": 9, "portal_trusted_proxies": "10.0.0.1"}
    )
    config = PortalConfig.from_settings(changed)
    assert config.throttle.client_max_failures == 9
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.1/32"]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("abc234", "ABC234"), (" a-b-c 2 3 4 ", "ABC234"), ("abc23", None), ("ABC23Ø", None), ("ß" * 3, None)],
)
def test_typed_codes_normalise(typed: str, expected: str | None) -> None:
    assert normalize_code(typed) == expected


def test_every_language_has_every_message() -> None:
    english = set(i18n.MESSAGES["en"])
    for locale in ("es", "fr", "de", "pt"):
        assert set(i18n.MESSAGES[locale]) == english, locale


@pytest.mark.parametrize(
    ("header", "instance", "expected"),
    [
        (None, None, "en"),
        ("", "de_DE", "de"),
        ("es-MX", "en", "es"),
        ("pt;q=0.5, fr;q=0.8", None, "fr"),
        ("fr;q=0, de", None, "de"),
        ("fr;q=abc, de", None, "de"),
        ("*", "pt", "pt"),
        ("x" * 600, "es", "es"),
    ],
)
def test_language_negotiation(header: str | None, instance: str | None, expected: str) -> None:
    assert i18n.negotiate(header, instance) == expected


@pytest.mark.parametrize(
    ("seconds", "round_up", "expected"),
    [
        (30, False, "less than a minute"),
        (30, True, "1 min"),
        (90, False, "1 min"),
        (3600, False, "1 h"),
        (5400, False, "1 h 30 min"),
        (90000, False, "1 d 1 h"),
        (604800, False, "7 d"),
    ],
)
def test_durations_read_naturally(seconds: int, round_up: bool, expected: str) -> None:
    assert i18n.Translator("en").duration(seconds, round_up=round_up) == expected


def test_durations_use_the_language_units() -> None:
    assert i18n.Translator("de").duration(5400) == "1 Std. 30 Min."
    assert i18n.Translator("fr").duration(90000) == "1 j 1 h"


def test_contrast_ratios_match_wcag() -> None:
    assert theme.contrast("#000000", "#ffffff") == pytest.approx(21)
    assert theme.contrast("#fff", "#fff") == pytest.approx(1)


@pytest.mark.parametrize(
    ("fg", "bg"), [("#eeeeee", "#ffffff"), ("#333333", "#000000"), ("#ffcc00", "#ffffff")]
)
def test_faint_text_colours_are_adjusted_until_readable(fg: str, bg: str) -> None:
    adjusted = theme.readable(fg, bg)
    assert adjusted != fg
    assert theme.contrast(adjusted, bg) >= 4.5


def test_readable_colours_are_kept_as_given() -> None:
    assert theme.readable("#222222", "#ffffff") == "#222222"


def test_only_hex_colours_reach_the_stylesheet() -> None:
    colours = theme.colours({"accent_color": "#abc", "text_color": "blue", "box_color": "#12345g"})
    assert colours["accent_color"] == "#abc"
    assert colours["text_color"] == "#4f4f4f"
    assert colours["box_color"] == "#ffffff"
