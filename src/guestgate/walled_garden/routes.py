"""HTTP routes of the walled_garden domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
