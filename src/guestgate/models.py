"""Imports every domain's models so the metadata (and Alembic) sees all tables."""

from guestgate.api_tokens.models import ApiToken
from guestgate.audit.models import AuditEvent
from guestgate.auth_integrations.models import AuthIntegration
from guestgate.console.models import ConsoleSession, ConsoleUser, CouponPreset, Membership
from guestgate.coupons.models import Coupon
from guestgate.db import Base
from guestgate.instances.models import Image, Instance, InstanceSubnet
from guestgate.notifications.models import Delivery, DeliveryAttempt, NotificationGroup
from guestgate.orgs.models import Org
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from guestgate.walled_garden.models import WalledGardenEntry

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuthIntegration",
    "Base",
    "ConsoleSession",
    "ConsoleUser",
    "Coupon",
    "CouponPreset",
    "CouponSchedule",
    "Delivery",
    "DeliveryAttempt",
    "Image",
    "Instance",
    "InstanceSubnet",
    "Membership",
    "NotificationGroup",
    "Org",
    "ScheduleRun",
    "Site",
    "SiteUser",
    "WalledGardenEntry",
]
