"""Tampered, truncated, expired and foreign-key signed URLs: public coupons, assets, previews, test URLs."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi.testclient import TestClient
from pydantic import SecretStr

from guestgate.runtime import Runtime
from guestgate.security import UrlSigner
from tests.core.test_errors import assert_error
from tests.utils.hostile import Tenant, local
from tests.utils.settings import make_settings

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
OTHER_KEY = "an-entirely-different-signing-key-of-32-bytes-or-more"


def parts_of(url: str) -> tuple[str, dict[str, str]]:
    split = urlsplit(url)
    return split.path, dict(parse_qsl(split.query))


def build(path: str, query: dict[str, str]) -> str:
    return f"{path}?{urlencode(query)}"


def flip(text: str, index: int = -1) -> str:
    """`text` with one hex digit changed."""
    chars = list(text)
    chars[index] = "0" if chars[index] != "0" else "1"
    return "".join(chars)


def tampered_signatures(signature: str) -> dict[str, str]:
    return {
        "last-digit": flip(signature),
        "first-digit": flip(signature, 0),
        "truncated-by-one": signature[:-1],
        "truncated-half": signature[: len(signature) // 2],
        "empty": "",
        "extended": signature + "00",
        "not-hex": "z" * len(signature),
        "non-ascii": "\u00e9" * len(signature),
        "very-long": signature * 200,
        "nul": signature[:-1] + "\x00",
    }


def other_key_signer(runtime: Runtime) -> UrlSigner:
    settings = make_settings(
        runtime.settings.resolved_database_url, runtime.settings.data_dir, signing_key=SecretStr(OTHER_KEY)
    )
    return UrlSigner(settings)


# --- the public coupon URL -----------------------------------------------------------------


def coupons_cases(tenant: Tenant, runtime: Runtime) -> dict[str, str]:
    """Name -> a forged variant of the tenant's signed coupons URL."""
    path, query = parts_of(tenant.urls["coupons"])
    sid, expires, signature = query["sid"], int(query["expires"]), query["signature"]
    cases = {
        f"signature-{name}": build(path, {**query, "signature": value})
        for name, value in tampered_signatures(signature).items()
    }
    cases.update(
        {
            "sid-unknown": build(path, {**query, "sid": UNKNOWN_ID}),
            "sid-uppercase": build(path, {**query, "sid": sid.upper()}),
            "sid-with-suffix": build(path, {**query, "sid": sid + "x"}),
            "sid-sql": build(path, {**query, "sid": f"{sid}' OR '1'='1"}),
            "sid-newline-expires": build(path, {**query, "sid": f"{sid}\n{expires}"}),
            "expires-plus-one": build(path, {**query, "expires": str(expires + 1)}),
            "expires-far-future": build(path, {**query, "expires": "99999999999"}),
            "expires-huge": build(path, {**query, "expires": "9" * 40}),
            "expires-negative": build(path, {**query, "expires": str(-expires)}),
            "second-sid-appended": build(path, query) + "&" + urlencode({"sid": UNKNOWN_ID}),
            "second-signature-appended": build(path, query) + "&signature=" + flip(signature),
            "other-key": build(
                path, {**query, "signature": other_key_signer(runtime).sign("coupons", sid, str(expires))}
            ),
            "other-purpose": build(
                path, {**query, "signature": runtime.signer.sign("asset", sid, str(expires))}
            ),
        }
    )
    return cases


def test_every_forged_coupons_url_is_403_signature_invalid(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    assert client.get(local(org_a.urls["coupons"])).status_code == 200
    for fmt in ("", "csv", "pdf"):
        for name, url in coupons_cases(org_a, runtime).items():
            target = url + (f"&format={fmt}" if fmt else "")
            response = client.get(target)
            if name == "signature-nul":
                # Text no database can hold is refused before any check, as everywhere under /captive.
                assert_error(response, 400, "invalid_request_error", "parameter_invalid")
                continue
            if name == "expires-huge":
                # Not a representable time: refused as a parameter, never a 500.
                assert response.status_code in (400, 403), (name, response.text)
                continue
            assert response.status_code == 403, (name, fmt, response.text)
            assert_error(response, 403, "permission_error", "signature_invalid")


def test_coupons_url_missing_a_parameter_is_400(client: TestClient, org_a: Tenant) -> None:
    path, query = parts_of(org_a.urls["coupons"])
    for missing in ("sid", "expires", "signature"):
        rest = {k: v for k, v in query.items() if k != missing}
        assert_error(client.get(build(path, rest)), 400, "invalid_request_error", "parameter_missing")
    assert_error(
        client.get(build(path, {**query, "expires": "soon"})),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )


def test_expired_coupons_url_is_403_url_expired_and_tampering_still_wins(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    path, query = parts_of(org_a.urls["coupons"])
    past = int(time.time()) - 5
    expired = {
        **query,
        "expires": str(past),
        "signature": runtime.signer.sign("coupons", query["sid"], str(past)),
    }
    assert_error(client.get(build(path, expired)), 403, "permission_error", "url_expired")
    assert_error(
        client.get(build(path, {**expired, "signature": flip(expired["signature"])})),
        403,
        "permission_error",
        "signature_invalid",
    )
    # Pushing the expiry forward breaks the signature.
    assert_error(
        client.get(build(path, {**expired, "expires": str(past + 86400)})),
        403,
        "permission_error",
        "signature_invalid",
    )


# --- image asset URLs ----------------------------------------------------------------------


def test_every_forged_asset_url_is_403_and_serves_no_image(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    path, query = parts_of(org_a.urls["logo"])
    asset_id = path.rsplit("/", 1)[1]
    served = client.get(build(path, query))
    assert served.status_code == 200
    assert served.headers["x-content-type-options"] == "nosniff"
    expires = int(query["expires"])
    cases: dict[str, str] = {
        f"signature-{name}": build(path, {**query, "signature": value})
        for name, value in tampered_signatures(query["signature"]).items()
    }
    cases.update(
        {
            "id-unknown": build(f"/captive/assets/{UNKNOWN_ID}", query),
            "id-uppercase": build(f"/captive/assets/{asset_id.upper()}", query),
            "expires-plus-one": build(path, {**query, "expires": str(expires + 1)}),
            "other-key": build(
                path, {**query, "signature": other_key_signer(runtime).sign("asset", asset_id, str(expires))}
            ),
            "other-purpose": build(
                path, {**query, "signature": runtime.signer.sign("preview", asset_id, str(expires))}
            ),
        }
    )
    for name, url in cases.items():
        response = client.get(url)
        if name == "signature-nul":
            assert_error(response, 400, "invalid_request_error", "parameter_invalid")
            continue
        assert response.status_code == 403, (name, response.text)
        assert_error(response, 403, "permission_error", "signature_invalid")
        assert not response.headers["content-type"].startswith("image/")
    # An encoded path escape never reaches another route's data.
    escaped = client.get(build(f"/captive/assets/{quote('../instances', safe='')}", query))
    assert escaped.status_code in (403, 404) and escaped.json()["code"] in (
        "signature_invalid",
        "route_not_found",
    )
    past = int(time.time()) - 5
    expired = {"expires": str(past), "signature": runtime.signer.sign("asset", asset_id, str(past))}
    assert_error(client.get(build(path, expired)), 403, "permission_error", "url_expired")
    for missing in ("expires", "signature"):
        rest = {k: v for k, v in query.items() if k != missing}
        assert_error(client.get(build(path, rest)), 400, "invalid_request_error", "parameter_missing")


def test_a_correctly_signed_url_for_a_missing_asset_is_404(client: TestClient, runtime: Runtime) -> None:
    expires = str(int(time.time()) + 600)
    url = build(
        f"/captive/assets/{UNKNOWN_ID}",
        {"expires": expires, "signature": runtime.signer.sign("asset", UNKNOWN_ID, expires)},
    )
    assert_error(client.get(url), 404, "not_found_error", "resource_not_found")


# --- guest pages behind signed URLs: the instance preview and an integration's test URL -----


def _refused_page(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers


def test_forged_preview_urls_are_403_pages(client: TestClient, runtime: Runtime, org_a: Tenant) -> None:
    path, query = parts_of(org_a.urls["preview"])
    instance_id = path.rsplit("/", 1)[1]
    assert client.get(build(path, query)).status_code == 200
    expires = int(query["expires"])
    variants = [
        build(path, {**query, "signature": value})
        for value in tampered_signatures(query["signature"]).values()
    ]
    variants += [
        build(f"/guest/preview/{org_a.ids['oauthInstanceId']}", query),
        build(path, {**query, "expires": str(expires + 1)}),
        build(
            path, {**query, "signature": other_key_signer(runtime).sign("preview", instance_id, str(expires))}
        ),
        build(path, {k: v for k, v in query.items() if k != "signature"}),
        build(path, {**query, "expires": "-1"}),
    ]
    for url in variants:
        _refused_page(client.get(url), 403)
    past = str(int(time.time()) - 5)
    _refused_page(
        client.get(
            build(path, {"expires": past, "signature": runtime.signer.sign("preview", instance_id, past)})
        ),
        403,
    )


def test_forged_integration_test_urls_are_403_and_never_reach_the_provider(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    path, query = parts_of(org_a.urls["test"])
    integration_id = path.rsplit("/", 1)[1]
    issued = client.get(build(path, query), follow_redirects=False)
    assert issued.status_code == 303
    assert issued.headers["location"].startswith("https://github.com/login/oauth/authorize?")
    expires = int(query["expires"])
    variants = [
        build(path, {**query, "signature": value})
        for value in tampered_signatures(query["signature"]).values()
    ]
    variants += [
        build(f"/guest/oauth/test/{UNKNOWN_ID}", query),
        build(path, {**query, "expires": str(expires + 1)}),
        build(path, {**query, "expires": "9" * 13}),
        build(
            path,
            {
                **query,
                "signature": other_key_signer(runtime).sign("oauth-test", integration_id, str(expires)),
            },
        ),
        build(path, {**query, "signature": runtime.signer.sign("preview", integration_id, str(expires))}),
        build(path, {k: v for k, v in query.items() if k != "expires"}),
    ]
    for url in variants:
        _refused_page(client.get(url, follow_redirects=False), 403)
    past = str(int(time.time()) - 5)
    expired = {"expires": past, "signature": runtime.signer.sign("oauth-test", integration_id, past)}
    _refused_page(client.get(build(path, expired), follow_redirects=False), 403)
