"""The plan's rules without a database: ranges, the effective plan, the card's line."""

from __future__ import annotations

import pytest

from guestgate.coupons.words import Words
from guestgate.errors import ParameterInvalid
from guestgate.plans import service
from guestgate.plans.service import Plan


def test_the_default_plan_is_one_device_once_without_limits() -> None:
    assert Plan(1, 1, None, None, None, "creation") == service.DEFAULT
    assert service.check(service.DEFAULT) is service.DEFAULT


@pytest.mark.parametrize(
    ("plan", "param"),
    [
        (Plan(max_devices=0), "max_devices"),
        (Plan(max_devices=101, max_uses=None), "max_devices"),
        (Plan(max_uses=10_001), "max_uses"),
        (Plan(download_kbps=63), "download_kbps"),
        (Plan(upload_kbps=10_000_001), "upload_kbps"),
        (Plan(data_limit_mb=0), "data_limit_mb"),
        (Plan(max_devices=2, max_uses=1), "max_uses"),
    ],
)
def test_check_names_the_field_out_of_range(plan: Plan, param: str) -> None:
    with pytest.raises(ParameterInvalid) as raised:
        service.check(plan, prefix="plan.")
    assert raised.value.param == f"plan.{param}"


def test_the_bounds_themselves_are_allowed() -> None:
    for plan in (
        Plan(max_devices=100, max_uses=10_000, download_kbps=64, upload_kbps=10_000_000, data_limit_mb=1),
        Plan(max_devices=1, max_uses=None, data_limit_mb=10_000_000, validity_from="first_use"),
    ):
        assert service.check(plan) == plan


def test_overrides_replace_only_the_fields_they_name_and_none_is_no_limit() -> None:
    base = Plan(max_devices=2, max_uses=5, download_kbps=1_000)
    got = service.overridden(base, {"max_uses": None, "data_limit_mb": 50, "unknown": 1})
    assert got == Plan(max_devices=2, max_uses=None, download_kbps=1_000, data_limit_mb=50)
    assert service.overridden(base, None) is base


@pytest.mark.parametrize(
    ("plan", "line"),
    [
        (Plan(), ""),
        (
            Plan(max_devices=2, max_uses=2, download_kbps=10_000, data_limit_mb=1_000),
            "2 devices · 10 Mbit/s · 1 GB",
        ),
        (Plan(max_uses=None, download_kbps=512, upload_kbps=512), "unlimited sign-ins · 512 kbit/s"),
        (
            Plan(max_devices=3, max_uses=10, download_kbps=1_500, upload_kbps=500),
            "3 devices · 10 sign-ins · 1.5 Mbit/s down, 500 kbit/s up",
        ),
        (Plan(upload_kbps=2_000, data_limit_mb=250), "2 Mbit/s up · 250 MB"),
    ],
)
def test_the_card_line_says_what_the_code_buys(plan: Plan, line: str) -> None:
    assert service.describe(plan) == line


def test_the_card_line_is_in_the_cards_language_with_the_time_from_first_use() -> None:
    plan = Plan(max_devices=2, max_uses=2, data_limit_mb=2_000, validity_from="first_use")
    assert (
        service.describe(plan, Words("fr"), validity_minutes=480)
        == "2 appareils · 2 GB · 8 heures dès la première utilisation"
    )
