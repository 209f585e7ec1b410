"""Request and response shapes of coupon schedules, as the seed (PUT coupon schedule) states them.

The seed is OpenAPI 3.0 (`example`, `nullable: true`); pydantic writes JSON Schema (`examples`,
`anyOf` with null, titles). `_seed_style` turns each property back into the seed's form so the
published components read like the seed, field for field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from guestgate.plans.schemas import PlanOut, PlanOverrides
from guestgate.schemas import Between, Timestamp, TimeZoneName, invalid

RecurrenceType = Literal["daily", "weekly", "monthly"]
DEFAULT_TIME_OF_DAY = "00:00"
_TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_MAX_NAME = 200

NAME_DOC = "A human-readable name for the schedule."
COUNT_DOC = "The number of coupons to generate each time the schedule runs."
RECURRENCE_DOC = "How often the schedule should run."
DAY_OF_WEEK_DOC = "Required for 'weekly' recurrence. The day of the week to run (0=Sunday, 6=Saturday)."
DAY_OF_MONTH_DOC = "Required for 'monthly' recurrence. The day of the month to run (1-31)."
TIMEZONE_DOC = "The timezone in which the schedule should be evaluated (e.g., 'America/New_York')."
GROUP_DOC = "The ID of a notification group to receive the generated coupons."
TIME_OF_DAY_DOC = (
    "[extension] The local wall-clock time (`HH:MM`, 24-hour, 00:00 to 23:59) in `timezone` at "
    "which the schedule runs. Defaults to 00:00 on create; omitted on update, it keeps its value."
)


def _check_name(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise invalid("must not be empty")
    if len(stripped) > _MAX_NAME:
        raise invalid(f"must be at most {_MAX_NAME} characters")
    return stripped


def _check_time_of_day(value: str) -> str:
    if not _TIME_OF_DAY.fullmatch(value):
        raise invalid("must be a time as HH:MM (24-hour, 00:00 to 23:59)")
    return value


def _seed_style(schema: dict[str, Any]) -> None:
    """Drop pydantic's titles, model docstring and null defaults; nullable as `nullable: true`."""
    schema.pop("title", None)
    schema.pop("description", None)
    for name, prop in list(schema.get("properties", {}).items()):
        prop.pop("title", None)
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        branches = prop.get("anyOf")
        if branches and {"type": "null"} in branches and len(branches) == 2:
            (value,) = [b for b in branches if b != {"type": "null"}]
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            schema["properties"][name] = {**value, **rest, "nullable": True}


def _doc(description: str, example: object) -> dict[str, Any]:
    return {"description": description, "json_schema_extra": {"example": example}}


ScheduleName = Annotated[str, AfterValidator(_check_name)]
TimeOfDay = Annotated[str, AfterValidator(_check_time_of_day)]
Count = Annotated[int, Between(1, 500)]
ValidFor = Annotated[int, Between(1, 90000)]
DayOfWeek = Annotated[int, Between(0, 6)]
DayOfMonth = Annotated[int, Between(1, 31)]


class CouponScheduleCreate(BaseModel):
    """A coupon schedule to create, or the whole writable representation to replace one with."""

    model_config = ConfigDict(json_schema_extra=_seed_style)

    name: ScheduleName = Field(**_doc(NAME_DOC, "Daily Guest Passes"))
    count: Count = Field(**_doc(COUNT_DOC, 20))
    recurrence_type: RecurrenceType = Field(**_doc(RECURRENCE_DOC, "daily"))
    day_of_week: DayOfWeek | None = Field(None, **_doc(DAY_OF_WEEK_DOC, 1))
    day_of_month: DayOfMonth | None = Field(None, **_doc(DAY_OF_MONTH_DOC, 15))
    valid_for_in_minutes: ValidFor = Field(
        **_doc("The number of minutes each generated coupon will be valid for.", 480)
    )
    timezone: TimeZoneName = Field(**_doc(TIMEZONE_DOC, "Australia/Sydney"))
    notification_group_id: str = Field(**_doc(GROUP_DOC, "ng_a1b2c3d4e5f6"))
    time_of_day: TimeOfDay = Field(
        DEFAULT_TIME_OF_DAY,
        description=TIME_OF_DAY_DOC,
        json_schema_extra={"example": "08:00", "pattern": f"^{_TIME_OF_DAY.pattern}$"},
    )
    plan: PlanOverrides | None = Field(
        None,
        description="[extension] What the schedule's codes buy, where it differs from the instance's "
        "plan. Omitted on update: kept; `{}` or null: the instance's plan.",
    )


def _response_style(schema: dict[str, Any]) -> None:
    _seed_style(schema)
    # The seed lists no required fields on the response (every field is always present).
    schema.pop("required", None)


class CouponSchedule(BaseModel):
    """A coupon schedule with the counters of its last run."""

    model_config = ConfigDict(json_schema_extra=_response_style)

    id: str = Field(
        description="The unique identifier for the coupon schedule.",
        json_schema_extra={"format": "uuid", "example": "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"},
    )
    name: str = Field(**_doc(NAME_DOC, "Daily Guest Passes"))
    instance_id: str = Field(
        description="The ID of the instance this schedule belongs to.",
        json_schema_extra={"format": "uuid", "example": "9a7f1b2c-3d4e-5f6a-7b8c-9d0e1f2a3b4c"},
    )
    count: int = Field(**_doc(COUNT_DOC, 20))
    recurrence_type: RecurrenceType = Field(**_doc(RECURRENCE_DOC, "daily"))
    day_of_week: int | None = Field(**_doc(DAY_OF_WEEK_DOC, 1))
    day_of_month: int | None = Field(**_doc(DAY_OF_MONTH_DOC, 15))
    valid_for_in_minutes: int = Field(
        **_doc("The number of minutes each generated coupon will be valid for after its creation.", 480)
    )
    timezone: str = Field(**_doc(TIMEZONE_DOC, "Australia/Sydney"))
    notification_group_id: str = Field(**_doc(GROUP_DOC, "ng_a1b2c3d4e5f6"))
    time_of_day: str = Field(
        description="[extension] The local wall-clock time (`HH:MM`, 24-hour) in `timezone` at which "
        "the schedule runs.",
        json_schema_extra={"example": "08:00"},
    )
    last_run_at: Timestamp | None = Field(
        **_doc("The timestamp of the last time this schedule was successfully run.", "2025-10-29T08:00:00Z")
    )
    next_run_at: Timestamp | None = Field(
        **_doc("The calculated timestamp of the next scheduled run.", "2025-10-30T08:00:00Z")
    )
    tokens_used_since_last_run: int = Field(
        **_doc("The number of coupons from the last run that have been redeemed.", 5)
    )
    tokens_generated_since_last_run: int = Field(
        **_doc("The total number of coupons generated in the last run.", 20)
    )
    tokens_available_since_last_run: int = Field(
        **_doc("The number of valid, unredeemed coupons remaining from the last run.", 15)
    )
    created_at: Timestamp = Field(
        **_doc("The timestamp when the schedule was created.", "2025-10-20T14:30:00Z")
    )
    plan: dict[str, Any] = Field(
        default_factory=dict,
        description="[extension] The schedule's overrides of the instance's plan (the fields it names).",
    )
    effective_plan: PlanOut | None = Field(
        None,
        description="[extension] What the schedule's next codes will buy: the instance's plan "
        "with the overrides.",
    )


class SignedUrl(BaseModel):
    """A signed public URL."""

    signed_url: str = Field(
        description="A signed URL, valid for 24 hours, that lists the schedule's valid coupons "
        "without authentication: those of the batches made up to the moment it was signed.",
        json_schema_extra={
            "example": "https://v1.api.altostrat.io/captive/coupons?sid=1a2b3c4d-5e6f-7a8b-9c0d-"
            "1e2f3a4b5c6d&expires=1761811200&signature=3f2a..."
        },
    )
