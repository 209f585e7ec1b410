"""Console coupons CSV (every valid coupon, streamed in keyset pages) and the guests search by identity."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.coupons import service as coupon_service
from guestgate.coupons.models import Coupon
from guestgate.coupons.schemas import CouponCreate
from guestgate.db import utcnow
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from tests.utils.console import MemberFactory, Org, make_org, sign_in


def _coupons(runtime: Runtime, org: Org, count: int) -> None:
    with runtime.sessions() as session:
        coupon_service.create_batch(
            org.instance_id,
            CouponCreate(count=count, minutes_valid=60),
            org_id=org.id,
            now=utcnow(),
            session=session,
        )


def test_the_csv_holds_every_valid_coupon_and_nothing_else(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    for _ in range(13):  # 1300: two keyset pages of 1000 and more
        _coupons(runtime, org, 100)
    with runtime.sessions() as session:
        spent = session.scalars(select(Coupon).limit(2)).all()
        spent[0].redeemed_at = utcnow()
        spent[1].expires_at = utcnow() - timedelta(minutes=1)
        session.commit()
        gone = {spent[0].code, spent[1].code}
    sign_in(client, member("org-a", "viewer"))
    page = client.get(f"/console/coupons?instance={org.instance_id}")
    assert f'href="/console/coupons.csv?instance={org.instance_id}"' in page.text
    response = client.get(f"/console/coupons.csv?instance={org.instance_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="lobby-org-a-')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1298 and len({row["code"] for row in rows}) == 1298
    assert not gone & {row["code"] for row in rows}
    assert response.text.count("code,expires_at") == 1
    theirs = make_org(runtime, "org-b").instance_id
    assert client.get(f"/console/coupons.csv?instance={theirs}").status_code == 404


def test_guests_are_found_by_part_of_their_e_mail_or_name(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    now = utcnow()
    with runtime.sessions() as session:
        for ip, email, name in [
            ("10.0.0.31", "ada@lovelace.example", "Ada Lovelace"),
            ("10.0.0.32", "grace@hopper.example", "Grace Hopper"),
            ("10.0.0.33", "100%_real@odd.example", "Percent"),
        ]:
            session.add(
                SiteUser(
                    org_id=org.id,
                    site_id=org.site_id,
                    instance_id=org.instance_id,
                    ip_address=ip,
                    strategy="oauth2",
                    identity={"provider": "google", "subject": ip, "email": email, "name": name},
                    status="active",
                    started_at=now,
                    expires_at=now + timedelta(hours=1),
                )
            )
        session.commit()
    sign_in(client, member("org-a", "front-desk"))
    base = f"/console/guests?site={org.site_id}"
    by_name = client.get(f"{base}&identity=LOVELACE")
    assert "10.0.0.31" in by_name.text and "10.0.0.32" not in by_name.text
    by_mail = client.get(f"{base}&identity=hopper.exa")
    assert "10.0.0.32" in by_mail.text and "10.0.0.31" not in by_mail.text
    # LIKE's wildcards are matched as themselves.
    literal = client.get(f"{base}&identity=%25_")
    assert "10.0.0.33" in literal.text and "10.0.0.31" not in literal.text
    assert "10.0.0.23" not in by_name.text  # the coupon guest has no identity
    short = client.get(f"{base}&identity=a")
    assert short.status_code == 400 and 'id="identity-error"' in short.text
