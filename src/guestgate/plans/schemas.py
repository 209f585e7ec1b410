"""[extension] The plan's fields in requests and responses (instances, batches, schedules, coupons).

Every field is an Altostrat extension: a client that never sends one gets today's codes (one
device, one sign-in, no limits, validity from creation). The ranges are `plans.service`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from guestgate.plans import service as plan_service
from guestgate.plans.service import DATA_LIMIT_MB, KBPS, MAX_DEVICES, MAX_USES, Plan, ValidityFrom
from guestgate.schemas import Between

MaxDevices = Annotated[int, Between(*MAX_DEVICES)]
MaxUses = Annotated[int, Between(*MAX_USES)]
Kbps = Annotated[int, Between(*KBPS)]
DataLimitMb = Annotated[int, Between(*DATA_LIMIT_MB)]

MAX_DEVICES_DOC = (
    f"[extension] Guests signed in with one code at the same time ({MAX_DEVICES[0]}..{MAX_DEVICES[1]}; "
    "1 as before). A device that signs in again while its session is active is not counted twice."
)
MAX_USES_DOC = (
    f"[extension] Sign-ins with one code in total over its life ({MAX_USES[0]}..{MAX_USES[1]}, at least "
    "`max_devices`; null: no limit; 1 as before)."
)
DOWNLOAD_DOC = f"[extension] Each session's download speed in kbit/s ({KBPS[0]}..{KBPS[1]}; null: no limit)."
UPLOAD_DOC = f"[extension] Each session's upload speed in kbit/s ({KBPS[0]}..{KBPS[1]}; null: no limit)."
DATA_DOC = (
    f"[extension] Each session's traffic, upload and download together, in MB of 1,000,000 bytes "
    f"({DATA_LIMIT_MB[0]}..{DATA_LIMIT_MB[1]}; null: no limit)."
)
VALIDITY_DOC = (
    "[extension] When a code's validity starts: `creation` (as before) or `first_use` (the code is "
    "valid for its minutes from its first sign-in; never used, it expires as if from creation)."
)


class PlanFields(BaseModel):
    """The plan fields of an instance's create and update: each given replaces, each omitted stays
    (on create: the defaults). Null for a limit: no limit."""

    max_devices: MaxDevices = Field(1, description=MAX_DEVICES_DOC, examples=[2])
    max_uses: MaxUses | None = Field(1, description=MAX_USES_DOC, examples=[10])
    download_kbps: Kbps | None = Field(None, description=DOWNLOAD_DOC, examples=[10000])
    upload_kbps: Kbps | None = Field(None, description=UPLOAD_DOC, examples=[2000])
    data_limit_mb: DataLimitMb | None = Field(None, description=DATA_DOC, examples=[1000])
    validity_from: ValidityFrom = Field("creation", description=VALIDITY_DOC)

    def plan_over(self, base: Plan) -> Plan:
        """`base` with the fields this request gave."""
        given = {name: getattr(self, name) for name in plan_service.FIELDS if name in self.model_fields_set}
        return plan_service.overridden(base, given)


class PlanOverrides(BaseModel):
    """[extension] Overrides of the instance's plan: a field given replaces the instance's value (null
    for a limit: no limit), a field omitted takes it."""

    model_config = ConfigDict(extra="forbid")

    max_devices: MaxDevices | None = Field(None, description=MAX_DEVICES_DOC, examples=[2])
    max_uses: MaxUses | None = Field(None, description=MAX_USES_DOC, examples=[10])
    download_kbps: Kbps | None = Field(None, description=DOWNLOAD_DOC, examples=[10000])
    upload_kbps: Kbps | None = Field(None, description=UPLOAD_DOC, examples=[2000])
    data_limit_mb: DataLimitMb | None = Field(None, description=DATA_DOC, examples=[1000])
    validity_from: ValidityFrom | None = Field(None, description=VALIDITY_DOC)

    def given(self) -> dict[str, Any]:
        """The overrides as stored (`coupon_schedules.plan`): only the fields the request named.

        `max_devices` and `validity_from` cannot be "no limit": null for them means "the instance's".
        """
        out = {name: getattr(self, name) for name in plan_service.FIELDS if name in self.model_fields_set}
        for name in ("max_devices", "validity_from"):
            if out.get(name, 0) is None:
                del out[name]
        return out


class PlanOut(BaseModel):
    """[extension] The plan a code was made with, or an instance's default plan."""

    max_devices: int = Field(description=MAX_DEVICES_DOC)
    max_uses: int | None = Field(description=MAX_USES_DOC)
    download_kbps: int | None = Field(description=DOWNLOAD_DOC)
    upload_kbps: int | None = Field(description=UPLOAD_DOC)
    data_limit_mb: int | None = Field(description=DATA_DOC)
    validity_from: ValidityFrom = Field(description=VALIDITY_DOC)

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        """The response shape of a plan."""
        return cls(**plan.to_dict())
