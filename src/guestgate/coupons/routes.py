"""HTTP routes of the coupons domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
