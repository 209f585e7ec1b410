"""HTTP routes of the auth_integrations domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
