"""HTTP routes of the site_users domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
