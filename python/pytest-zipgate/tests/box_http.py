"""Box's zip download API called with urllib, as a minimal client under test
(the plugin's own tests need no vendor SDK)."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from typing import Any, Dict, List, Tuple

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

REPORTS: Dict[str, Any] = {
    "users": [{"id": "ann", "token": "ann-token"}],
    "nodes": [
        {
            "id": "reports",
            "name": "Reports",
            "ids": {"box": "100"},
            "children": [
                {"id": "q1", "name": "q1.csv", "ids": {"box": "101"}, "content": {"text": "region,total\nnorth,12\n"}},
            ],
        }
    ],
}


def call(method: str, url: str, token: str = "ann-token", body: Any = None) -> Tuple[int, bytes]:
    """One vendor request; returns (status, body) whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def create(base: str, items: List[Dict[str, str]], name: str = "download", token: str = "ann-token") -> Tuple[int, Any]:
    """``POST /2.0/zip_downloads``: (status, decoded JSON answer)."""
    status, body = call("POST", base + "/2.0/zip_downloads", token, {"items": items, "download_file_name": name})
    return status, json.loads(body) if body else None


def download_folder(base: str, box_id: str, token: str = "ann-token") -> zipfile.ZipFile:
    """Creates a zip download of one folder and fetches it."""
    status, created = create(base, [{"type": "folder", "id": box_id}], token=token)
    assert status == 202, (status, created)
    status, data = call("GET", created["download_url"], token)
    assert status == 200, (status, data[:200])
    return zipfile.ZipFile(io.BytesIO(data))
