"""HTTP routes of the schedules domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
