"""Access plans: the typed `Plan`, its ranges, and the effective plan of a batch.

A plan says what one code buys:

- `max_devices` (1..100): guests signed in with the code at the same time (active sessions);
- `max_uses` (1..10000, None: no limit): sign-ins with the code in total, over its life;
- `download_kbps`, `upload_kbps` (64..10,000,000 kbit/s, None: no limit): each session's speed;
- `data_limit_mb` (1..10,000,000 MB, None: no limit): each session's traffic, up and down together;
- `validity_from`: `creation` (the code expires `minutes_valid` after it was made, as always) or
  `first_use` (after its first sign-in; a code never used still expires at its creation expiry).

The instance holds the default plan; a batch (`POST .../coupons`) or a schedule may override any
of its fields, and every code is made with the effective plan copied onto its row, so that a
sign-in reads one row and a later change of the instance does not change codes already printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, cast

from guestgate.coupons.words import Words
from guestgate.errors import ParameterInvalid
from guestgate.plans.columns import PlanColumns

ValidityFrom = Literal["creation", "first_use"]
VALIDITY_FROM: tuple[ValidityFrom, ...] = ("creation", "first_use")

# The ranges (inclusive); the schemas publish the same bounds.
MAX_DEVICES = (1, 100)
MAX_USES = (1, 10_000)
KBPS = (64, 10_000_000)
DATA_LIMIT_MB = (1, 10_000_000)
RANGES: dict[str, tuple[int, int]] = {
    "max_devices": MAX_DEVICES,
    "max_uses": MAX_USES,
    "download_kbps": KBPS,
    "upload_kbps": KBPS,
    "data_limit_mb": DATA_LIMIT_MB,
}
# A data limit's megabyte: decimal, as "1 GB" on a card means 1000 MB (bytes = MB * this).
BYTES_PER_MB = 1_000_000
# The fields whose None means "no limit" (max_devices always has a value).
NULLABLE = ("max_uses", "download_kbps", "upload_kbps", "data_limit_mb")


@dataclass(frozen=True)
class Plan:
    """What a code buys; the defaults are a code that signs in one guest, once, without limits."""

    max_devices: int = 1
    max_uses: int | None = 1
    download_kbps: int | None = None
    upload_kbps: int | None = None
    data_limit_mb: int | None = None
    validity_from: ValidityFrom = "creation"

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data (`schedule_runs.plan`, the API's `plan` objects)."""
        return asdict(self)


FIELDS = tuple(f.name for f in fields(Plan))
DEFAULT = Plan()


def check(plan: Plan, *, prefix: str = "") -> Plan:
    """The plan if every field is in range and `max_uses` allows `max_devices` sign-ins, else
    ParameterInvalid naming the field (`prefix` + its name, e.g. `plan.max_uses`)."""
    for name, (lo, hi) in RANGES.items():
        value = getattr(plan, name)
        if value is None and name in NULLABLE:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            nullable = " or null for no limit" if name in NULLABLE else ""
            raise ParameterInvalid(prefix + name, f"must be an integer from {lo} to {hi}{nullable}")
    if plan.validity_from not in VALIDITY_FROM:
        raise ParameterInvalid(prefix + "validity_from", f"must be one of {', '.join(VALIDITY_FROM)}")
    if plan.max_uses is not None and plan.max_uses < plan.max_devices:
        # Fewer sign-ins than devices would leave devices no code can ever fill.
        raise ParameterInvalid(
            prefix + "max_uses", f"must be at least max_devices ({plan.max_devices}), or null for no limit"
        )
    return plan


def of(row: PlanColumns) -> Plan:
    """The plan held by an instance's or a coupon's columns."""
    return Plan(
        max_devices=row.max_devices,
        max_uses=row.max_uses,
        download_kbps=row.download_kbps,
        upload_kbps=row.upload_kbps,
        data_limit_mb=row.data_limit_mb,
        validity_from=cast(ValidityFrom, row.validity_from),
    )


def columns(plan: Plan) -> dict[str, Any]:
    """The plan as the values of the plan columns (an INSERT's row, or `set_columns`)."""
    return plan.to_dict()


def set_columns(row: PlanColumns, plan: Plan) -> None:
    """Write the plan onto an instance's or a coupon's columns."""
    for name, value in columns(plan).items():
        setattr(row, name, value)


def overridden(base: Plan, overrides: Mapping[str, Any] | None) -> Plan:
    """`base` with each field `overrides` names replaced (a None there: no limit); unknown keys ignored.

    Overrides stored by an older version may name fields no longer known: they are skipped rather
    than failing a schedule's run.
    """
    if not overrides:
        return base
    changes = {name: overrides[name] for name in FIELDS if name in overrides}
    return replace(base, **changes)


def effective(instance: PlanColumns, overrides: Mapping[str, Any] | None = None) -> Plan:
    """The plan a batch's codes are made with: the instance's, with the batch's or schedule's overrides."""
    return overridden(of(instance), overrides)


def describe(plan: Plan, words: Words | None = None, *, validity_minutes: int | None = None) -> str:
    """A card's line in `words`' language: `2 devices · 10 Mbit/s · 1 GB`, what the code buys beyond
    one device, once, without limits (empty for that plan).

    The speed is the download's (what a guest notices), the upload's named after it when it
    differs. With validity from first use and `validity_minutes`, how long it lasts from then.
    """
    say = words or Words(None)
    parts: list[str] = []
    if plan.max_devices > 1:
        parts.append(say("plan_devices", count=plan.max_devices))
    if plan.max_uses is None:
        parts.append(say("plan_sign_ins_unlimited"))
    elif plan.max_uses > plan.max_devices:
        parts.append(say("plan_sign_ins", count=plan.max_uses))
    down, up = plan.download_kbps, plan.upload_kbps
    if down is not None and up in (None, down):
        parts.append(rate(down))
    elif down is not None and up is not None:
        parts.append(say("plan_down_up", down=rate(down), up=rate(up)))
    elif up is not None:
        parts.append(say("plan_up", up=rate(up)))
    if plan.data_limit_mb is not None:
        parts.append(volume(plan.data_limit_mb))
    if plan.validity_from == "first_use" and validity_minutes is not None:
        parts.append(say("plan_first_use", duration=say.duration(validity_minutes)))
    return " · ".join(parts)


def rate(kbps: int) -> str:
    """A speed as people write it: `10 Mbit/s`, `1.5 Mbit/s`, `512 kbit/s`."""
    if kbps >= 1000:
        return f"{_short(kbps / 1000)} Mbit/s"
    return f"{kbps} kbit/s"


def volume(mb: int) -> str:
    """A data amount as people write it: `1 GB`, `1.5 GB`, `500 MB` (decimal units, as the limit's)."""
    if mb >= 1000:
        return f"{_short(mb / 1000)} GB"
    return f"{mb} MB"


def _short(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")
