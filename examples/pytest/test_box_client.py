"""Test a Box client against zipgate with pytest and the pytest-zipgate plugin:
one server for the session, reset before each test, fixtures seeded per test,
faults injected, the request journal checked and the clock moved on.

    pip install pytest boxsdk ./python/pytest-zipgate
    ZIPGATE=path/to/zipgate pytest examples/pytest/test_box_client.py
"""

import io
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

# The plugin's `zipgate` fixture is a control-plane client for the session's
# server, reset before each test; `zipgate.url` is where the client points.


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
    zipgate.seed(REPORTS)
    client = box_client(zipgate.url)
    data = client.zip_downloads.download_zip(
        [CreateZipDownloadItems(type=FOLDER, id="100")], download_file_name="reports"
    ).read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.read("Reports/q1.csv") == b"region,total\nnorth,12\n"


def test_a_rate_limited_create_is_retried(zipgate):
    zipgate.seed(REPORTS)
    rule = zipgate.fault(match={"method": "POST", "path": "/2.0/zip_downloads"}, times=1,
                         respond={"status": 429})
    client = box_client(zipgate.url, attempts=3)
    created = client.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="100")])
    assert created.download_url.startswith(zipgate.url)
    posts = zipgate.requests(method="POST")
    assert [(p.status, p.faults) for p in posts] == [(429, [rule.id]), (202, [])]


def test_a_client_without_retries_sees_the_vendor_error(zipgate):
    zipgate.seed(REPORTS)
    zipgate.fault(match={"dialect": "box"}, respond={"status": 503})
    with pytest.raises(BoxAPIError) as error:
        box_client(zipgate.url).zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="100")])
    assert error.value.response_info.status_code == 503
    assert error.value.response_info.code == "unavailable"


def test_a_download_url_expires(zipgate):
    zipgate.seed(REPORTS)
    client = box_client(zipgate.url)
    created = client.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="100")])
    [job] = zipgate.jobs()
    zipgate.advance((job.expires - zipgate.clock()).total_seconds() + 1)
    assert zipgate.job(job.id).state == "expired"
    with pytest.raises(BoxAPIError) as error:
        client.zip_downloads.get_zip_download_content(created.download_url)
    assert error.value.response_info.status_code == 404
