"""The web page: GET / serves static/index.html; /static serves its script and stylesheet."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["ui"])
# A mount on the router is copied onto the app when the router is included.
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The search, similarity, ranking and FAQ page (plain HTML/JS, works offline)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
