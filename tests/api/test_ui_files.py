"""The web page's files: served at / and /static, self-contained, open without the API key."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from search_api.config import ApiSettings
from search_api.main import create_app

PAGE_FILES = ("/", "/static/app.js", "/static/style.css")


def test_page_and_assets_are_served(tmp_path: Path) -> None:
    with TestClient(create_app(ApiSettings(data_dir=tmp_path))) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/static/app.js"' in page.text
        assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
        missing = client.get("/static/nope.js")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        # The page is not an API operation; POST / is (TEI's route), GET / is not.
        assert list(client.get("/openapi.json").json()["paths"]["/"]) == ["post"]


def test_page_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    """Works offline: no CDN, no web fonts, no absolute URLs in the page or its assets."""
    with TestClient(create_app(ApiSettings(data_dir=tmp_path))) as client:
        for path in PAGE_FILES:
            assert not re.search(r"https?://|@import|src=[\"']//", client.get(path).text), path


def test_page_files_need_no_api_key_but_data_does(tmp_path: Path) -> None:
    settings = ApiSettings(data_dir=tmp_path, api_key="s3cret")  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        for path in PAGE_FILES:
            assert client.get(path).status_code == 200, path
        assert client.get("/collections").status_code == 401
        # A path that climbs out of /static never reaches the API (or the disk).
        climb = client.get("/static/../collections")
        assert climb.status_code in (401, 404) and "collections" not in climb.json()
        assert client.get("/static/%2e%2e/collections").status_code == 404
