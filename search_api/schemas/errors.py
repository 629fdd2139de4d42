"""The one error body every 4xx and 5xx carries, for /openapi.json."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable, e.g. empty_text, unknown_model")
    message: str = Field(description="what was wrong and what to send instead")


class ErrorResponse(BaseModel):
    """`{"error": {"code", "message"}}`."""

    error: ErrorDetail
