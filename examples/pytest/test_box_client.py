"""Test a Box client against zipgate with pytest: one server for the session,
reset before each test, fixtures seeded per test, a fault injected, and the
request journal checked.

    pip install pytest boxsdk
    ZIPGATE=path/to/zipgate pytest examples/pytest/test_box_client.py
"""

import io
import json
import os
import subprocess
import urllib.request
import zipfile

import pytest
from box_sdk_gen import (
    BaseUrls,
    BoxAPIError,
    BoxClient,
    BoxDeveloperTokenAuth,
    BoxRetryStrategy,
    CreateZipDownloadItems,
    CreateZipDownloadItemsTypeField,
    NetworkSession,
)


@pytest.fixture(scope="session")
def zipgate_url():
    # Port 0 picks a free port; zipgate prints its URL as the one line on stdout.
    server = subprocess.Popen(
        [os.environ.get("ZIPGATE", "zipgate"), "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    yield server.stdout.readline().strip()
    server.terminate()
    server.wait(timeout=10)


def control(base, method, path, body=None):
    """One call to zipgate's control plane under /_zipgate/."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


@pytest.fixture
def zipgate(zipgate_url):
    # Back to the starting fixtures, with no jobs, faults or journal entries.
    control(zipgate_url, "POST", "/_zipgate/reset")
    return zipgate_url


def box_client(base, attempts=1):
    return BoxClient(
        auth=BoxDeveloperTokenAuth(token="ann-token"),
        network_session=NetworkSession(
            base_urls=BaseUrls(base_url=base, upload_url=base, oauth_2_url=base),
            retry_strategy=BoxRetryStrategy(max_attempts=attempts),
        ),
    )


REPORTS = {
    "users": [{"id": "ann", "token": "ann-token"}],
    "nodes": [{"id": "reports", "name": "Reports", "ids": {"box": "100"}, "children": [
        {"id": "q1", "name": "q1.csv", "ids": {"box": "101"},
         "content": {"text": "region,total\nnorth,12\n"}},
    ]}],
}
FOLDER = CreateZipDownloadItemsTypeField.FOLDER


def test_downloads_a_seeded_folder(zipgate):
    control(zipgate, "PUT", "/_zipgate/fixtures", REPORTS)
    client = box_client(zipgate)
    data = client.zip_downloads.download_zip(
        [CreateZipDownloadItems(type=FOLDER, id="100")], download_file_name="reports"
    ).read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.read("Reports/q1.csv") == b"region,total\nnorth,12\n"


def test_a_rate_limited_create_is_retried(zipgate):
    control(zipgate, "PUT", "/_zipgate/fixtures", REPORTS)
    control(zipgate, "POST", "/_zipgate/faults", {
        "match": {"method": "POST", "path": "/2.0/zip_downloads"},
        "times": 1,
        "respond": {"status": 429},
    })
    client = box_client(zipgate, attempts=3)
    created = client.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="100")])
    assert created.download_url.startswith(zipgate)
    posts = control(zipgate, "GET", "/_zipgate/requests?method=POST")["requests"]
    assert [p["status"] for p in posts] == [429, 202]


def test_a_client_without_retries_sees_the_vendor_error(zipgate):
    control(zipgate, "PUT", "/_zipgate/fixtures", REPORTS)
    control(zipgate, "POST", "/_zipgate/faults", {"match": {"dialect": "box"}, "respond": {"status": 503}})
    with pytest.raises(BoxAPIError) as error:
        box_client(zipgate).zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="100")])
    assert error.value.response_info.status_code == 503
    assert error.value.response_info.code == "unavailable"
