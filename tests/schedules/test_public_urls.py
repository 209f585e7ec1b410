"""Signed public coupon URLs (#19 generate_url, #21 GET /captive/coupons): signing, tampering, expiry, keys."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import time_machine
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pypdf import PdfReader

from guestgate.app import create_app
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ
from tests.schedules import (
    UNKNOWN_ID,
    add_run,
    assert_error,
    create_schedule,
    make_group,
    make_instance,
    seed_body,
    time_travel_proof,
    utc,
)
from tests.utils.settings import TEST_KEYS, TokenFactory, make_settings

NOW = utc(2025, 6, 1, 12)
EXPIRES = int(NOW.timestamp()) + 24 * 3600
# Altostrat's coupon fields, and [extension] the plan's: what the code buys and its sign-ins so far.
COUPON_FIELDS = {"id", "code", "expires_at", "redeemed_at", "created_at", "uses", "plan"}


@pytest.fixture
def auth(auth: TokenFactory) -> TokenFactory:
    return time_travel_proof(auth)


@pytest.fixture
def instance_id(runtime: Runtime, headers: dict[str, str]) -> str:
    return make_instance(runtime)


@pytest.fixture
def schedule_id(runtime: Runtime, client: TestClient, headers: dict[str, str], instance_id: str) -> str:
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        created = create_schedule(client, headers, instance_id, seed_body(make_group(runtime)))
    return str(created["id"])


def generate(client: TestClient, headers: dict[str, str], instance_id: str, schedule_id: str) -> Any:
    with time_machine.travel(NOW, tick=False):
        return client.get(
            f"/captive/instances/{instance_id}/coupon-schedules/{schedule_id}/generate_url", headers=headers
        )


@pytest.fixture
def signed_url(client: TestClient, headers: dict[str, str], instance_id: str, schedule_id: str) -> str:
    response = generate(client, headers, instance_id, schedule_id)
    assert response.status_code == 200, response.text
    return str(response.json()["signed_url"])


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def with_params(url: str, **changes: object) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: str(v) for k, v in changes.items()})
    return f"{parts.path}?{urlencode(query)}"


def fetch(client: TestClient, url: str, *, at: Any = NOW) -> Any:
    with time_machine.travel(at, tick=False):
        return client.get(url if url.startswith("/") else path_of(url))


# --- generate_url ----------------------------------------------------------------------------


def test_generate_url_signs_sid_and_expiry_for_24_hours(
    client: TestClient, headers: dict[str, str], instance_id: str, schedule_id: str
) -> None:
    response = generate(client, headers, instance_id, schedule_id)
    assert response.status_code == 200
    assert set(response.json()) == {"signed_url"}
    url = response.json()["signed_url"]
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "testserver", "/captive/coupons")
    query = parse_qs(parts.query)
    assert set(query) == {"sid", "expires", "signature"}
    assert query["sid"] == [schedule_id]
    assert query["expires"] == [str(EXPIRES)]
    expected = hmac.new(
        TEST_KEYS["signing_key"].encode(), f"coupons\n{schedule_id}\n{EXPIRES}".encode(), hashlib.sha256
    ).hexdigest()
    assert query["signature"] == [expected]


@pytest.mark.parametrize("scope", [SCOPE_READ, SCOPE_ISSUE])
def test_generate_url_is_open_to_readers_and_issuers(
    client: TestClient, auth: TokenFactory, instance_id: str, schedule_id: str, scope: str
) -> None:
    assert generate(client, auth(scopes=(scope,)), instance_id, schedule_id).status_code == 200


def test_generate_url_without_a_token_is_401(client: TestClient, instance_id: str, schedule_id: str) -> None:
    assert_error(generate(client, {}, instance_id, schedule_id), 401, "token_missing")


def test_generate_url_for_another_orgs_schedule_is_404(
    client: TestClient, auth: TokenFactory, instance_id: str, schedule_id: str
) -> None:
    assert_error(generate(client, auth(org="org-b"), instance_id, schedule_id), 404, "resource_not_found")
    assert_error(generate(client, auth(), instance_id, UNKNOWN_ID), 404, "resource_not_found")


# --- GET /captive/coupons ---------------------------------------------------------------------


def test_signed_url_lists_the_schedules_valid_coupons_without_a_token(
    runtime: Runtime,
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    schedule_id: str,
    signed_url: str,
) -> None:
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(hours=3), valid=2, redeemed=1, expired=1)
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(hours=1), valid=3, redeemed=2)
    with time_machine.travel(NOW, tick=False):
        other = create_schedule(client, headers, instance_id, seed_body(make_group(runtime)))
    add_run(runtime, other["id"], ran_at=NOW, valid=4)

    response = fetch(client, signed_url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    coupons = response.json()
    assert len(coupons) == 5
    assert all(set(c) == COUPON_FIELDS and c["redeemed_at"] is None for c in coupons)
    assert [c["created_at"] for c in coupons] == sorted((c["created_at"] for c in coupons), reverse=True)
    assert all(c["expires_at"] > "2025-06-01T12:00:00Z" for c in coupons)


def test_signed_url_of_a_schedule_without_coupons_is_an_empty_list(
    client: TestClient, signed_url: str
) -> None:
    response = fetch(client, signed_url)
    assert response.status_code == 200
    assert response.json() == []


def test_signed_url_ignores_a_bearer_token_of_another_org(
    client: TestClient, auth: TokenFactory, signed_url: str
) -> None:
    with time_machine.travel(NOW, tick=False):
        response = client.get(path_of(signed_url), headers=auth(org="org-b"))
    assert response.status_code == 200


@pytest.mark.parametrize("param", ["sid", "expires", "signature"])
def test_changed_parameter_is_403_signature_invalid(
    runtime: Runtime,
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    signed_url: str,
    param: str,
) -> None:
    query = parse_qs(urlsplit(signed_url).query)
    with time_machine.travel(NOW, tick=False):
        other = create_schedule(client, headers, instance_id, seed_body(make_group(runtime)))
    signature = query["signature"][0]
    changed = {
        "sid": other["id"],
        "expires": EXPIRES + 3600,
        "signature": signature[:-1] + ("0" if signature[-1] != "0" else "1"),
    }[param]
    response = fetch(client, with_params(signed_url, **{param: changed}))
    assert_error(response, 403, "signature_invalid", "The URL's signature is invalid.")


@pytest.mark.parametrize("signature", ["", "zz", "0" * 64, "not-hex-at-all"])
def test_malformed_signature_is_403(client: TestClient, signed_url: str, signature: str) -> None:
    assert_error(fetch(client, with_params(signed_url, signature=signature)), 403, "signature_invalid")


def test_signature_in_upper_case_is_accepted(client: TestClient, signed_url: str) -> None:
    signature = parse_qs(urlsplit(signed_url).query)["signature"][0]
    assert fetch(client, with_params(signed_url, signature=signature.upper())).status_code == 200


def test_url_is_valid_until_its_expiry_second_and_403_url_expired_after(
    client: TestClient, signed_url: str
) -> None:
    assert fetch(client, signed_url, at=NOW + timedelta(hours=24)).status_code == 200
    response = fetch(client, signed_url, at=NOW + timedelta(hours=24, seconds=1))
    assert_error(response, 403, "url_expired", "The URL has expired.")


def test_expired_and_tampered_url_is_signature_invalid(client: TestClient, signed_url: str) -> None:
    # The signature is checked first, so an expiry moved by hand never reads as merely expired.
    response = fetch(client, with_params(signed_url, expires=EXPIRES - 100), at=NOW + timedelta(days=2))
    assert_error(response, 403, "signature_invalid")


@pytest.mark.parametrize("param", ["sid", "expires", "signature"])
def test_missing_parameter_is_400_parameter_missing(client: TestClient, signed_url: str, param: str) -> None:
    query = {k: v[0] for k, v in parse_qs(urlsplit(signed_url).query).items()}
    del query[param]
    response = fetch(client, f"/captive/coupons?{urlencode(query)}")
    assert_error(response, 400, "parameter_missing", f"The '{param}' parameter is required for this request.")


def test_non_integer_expires_is_400(client: TestClient, signed_url: str) -> None:
    response = fetch(client, with_params(signed_url, expires="tomorrow"))
    assert_error(response, 400, "parameter_invalid", "The 'expires' parameter must be an integer.")


def test_signed_url_of_a_deleted_schedule_is_404(
    client: TestClient, headers: dict[str, str], instance_id: str, schedule_id: str, signed_url: str
) -> None:
    response = client.delete(
        f"/captive/instances/{instance_id}/coupon-schedules/{schedule_id}", headers=headers
    )
    assert response.status_code == 204
    assert_error(fetch(client, signed_url), 404, "resource_not_found")


# --- formats ----------------------------------------------------------------------------------


def test_format_json_is_the_default(
    runtime: Runtime, client: TestClient, schedule_id: str, signed_url: str
) -> None:
    add_run(runtime, schedule_id, ran_at=NOW, valid=2)
    assert fetch(client, signed_url + "&format=json").json() == fetch(client, signed_url).json()


def test_format_csv_is_a_download_of_the_same_coupons(
    runtime: Runtime, client: TestClient, schedule_id: str, signed_url: str
) -> None:
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(minutes=5), valid=3, redeemed=1)
    as_json = fetch(client, signed_url).json()
    response = fetch(client, signed_url + "&format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    # Named after the schedule and the local day it was downloaded (Sydney: 22:00 on 1 June).
    assert (
        response.headers["content-disposition"] == 'attachment; filename="daily-guest-passes-2025-06-01.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.text)))
    plan_columns = [
        "max_devices",
        "max_uses",
        "download_kbps",
        "upload_kbps",
        "data_limit_mb",
        "validity_from",
    ]
    assert rows[0] == ["code", "expires_at", "created_at", "id", "valid_until", *plan_columns]
    # valid_until: the expiry in the schedule's zone (Australia/Sydney, AEST in June); then the
    # default plan (empty: no limit).
    assert rows[1:] == [
        [
            c["code"],
            c["expires_at"],
            c["created_at"],
            c["id"],
            "2025-06-02 21:55 AEST",
            "1",
            "1",
            "",
            "",
            "",
            "creation",
        ]
        for c in as_json
    ]
    assert len(rows) == 4


def test_format_csv_still_checks_the_signature(client: TestClient, signed_url: str) -> None:
    response = fetch(client, with_params(signed_url, signature="0" * 64, format="csv"))
    assert_error(response, 403, "signature_invalid")


def test_format_pdf_is_printable_cards_of_the_same_coupons(
    runtime: Runtime, client: TestClient, schedule_id: str, signed_url: str
) -> None:
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(minutes=5), valid=12, redeemed=1)
    codes = [c["code"] for c in fetch(client, signed_url).json()]
    for paper in ("a4", "letter"):
        response = fetch(client, signed_url + f"&format=pdf&paper={paper}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert (
            response.headers["content-disposition"]
            == 'attachment; filename="daily-guest-passes-2025-06-01.pdf"'
        )
        assert response.headers["cache-control"] == "no-store"
        pdf = PdfReader(io.BytesIO(response.content))
        assert len(pdf.pages) == 2  # 12 cards, 10 to a page
        text = "".join(page.extract_text() for page in pdf.pages)
        assert all(code in text for code in codes)
        width = float(pdf.pages[0].mediabox.width)
        assert round(width) == (595 if paper == "a4" else 612)


def test_format_pdf_still_checks_the_signature(client: TestClient, signed_url: str) -> None:
    response = fetch(client, with_params(signed_url, signature="0" * 64, format="pdf"))
    assert_error(response, 403, "signature_invalid")


@pytest.mark.parametrize("fmt", ["xml", "", "PDF"])
def test_unsupported_format_is_400(client: TestClient, signed_url: str, fmt: str) -> None:
    response = fetch(client, signed_url + f"&format={fmt}")
    assert_error(
        response,
        400,
        "parameter_invalid",
        "The 'format' parameter must be one of 'json', 'csv', 'pdf' or 'html'.",
    )


# --- key rotation -----------------------------------------------------------------------------

NEW_KEY = "the-next-signing-key-that-is-at-least-32-bytes"


@pytest.fixture
def rotated_client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The same database served with a new signing key, the old one kept as previous."""
    settings = make_settings(
        db_url,
        tmp_path / "rotated",
        signing_key=SecretStr(NEW_KEY),
        signing_key_previous=SecretStr(TEST_KEYS["signing_key"]),
    )
    rotated = Runtime.build(settings)
    with TestClient(create_app(runtime=rotated), raise_server_exceptions=False) as test_client:
        yield test_client
    rotated.close()


def test_url_signed_with_the_previous_key_is_still_accepted(
    rotated_client: TestClient, signed_url: str
) -> None:
    response = fetch(rotated_client, signed_url)
    assert response.status_code == 200, response.text


def test_rotated_server_signs_new_urls_with_the_new_key(
    rotated_client: TestClient,
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    schedule_id: str,
) -> None:
    url = generate(rotated_client, headers, instance_id, schedule_id).json()["signed_url"]
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    expected = hmac.new(
        NEW_KEY.encode(), f"coupons\n{schedule_id}\n{EXPIRES}".encode(), hashlib.sha256
    ).hexdigest()
    assert signature == expected
    assert fetch(rotated_client, url).status_code == 200
    # The old server does not know the new key.
    assert_error(fetch(client, url), 403, "signature_invalid")


def test_url_signed_with_a_retired_key_is_rejected(db_url: str, tmp_path: Path, signed_url: str) -> None:
    settings = make_settings(db_url, tmp_path / "retired", signing_key=SecretStr(NEW_KEY))
    retired = Runtime.build(settings)
    with TestClient(create_app(runtime=retired), raise_server_exceptions=False) as other:
        assert_error(fetch(other, signed_url), 403, "signature_invalid")
    retired.close()
