#!/usr/bin/env python3
"""Drive zipgate's itslearning dialect in XML: the request body written
exactly as the vendor's help page sample, answered in XML (DataContract
order and namespaces), parsed with ElementTree (namespace-aware) and checked
member by member; then the zip at DownloadUrl.

Usage: PY tests/clients/itslearning_xml.py BASE_URL
"""

import time
import xml.etree.ElementTree as ET

from harness import Checks, expect, http, open_zip, run

NAME = "itslearning_xml"
NS = "http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SAMPLE = """<ZipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/Itslearning.RestApi.Entities.YourFiles">
  <FileIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>12345</d2p1:int>
    <d2p1:int>34325</d2p1:int>
  </FileIds>
  <FolderIds xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
    <d2p1:int>1004</d2p1:int>
  </FolderIds>
</ZipRequest>"""
AUTH = {"Authorization": "Bearer alice-token"}
MEMBERS = ["Created", "DownloadUrl", "FileRepoId", "JobId", "Status", "ZipFileName"]


def model(what, reply):
    """The ZipFileJobModel's members, checked for namespace and order."""
    expect(f"{what}: 200", reply.status == 200, reply)
    expect(f"{what}: text/xml; charset=utf-8", reply.header("Content-Type") == "text/xml; charset=utf-8", reply)
    expect(f"{what}: no declaration", not reply.body.startswith(b"<?xml"), reply.body[:60])
    root = ET.fromstring(reply.body)
    expect(f"{what}: root ZipFileJobModel in the entities namespace", root.tag == f"{{{NS}}}ZipFileJobModel", root.tag)
    tags = [child.tag.split("}")[1] for child in root]
    expect(f"{what}: members in DataContract (alphabetical) order", tags == MEMBERS, tags)
    expect(f"{what}: every member in the entities namespace", all(c.tag.startswith(f"{{{NS}}}") for c in root), tags)
    values = {child.tag.split("}")[1]: child for child in root}
    return values


def main(base):
    checks = Checks(NAME)
    state, step = checks.state, checks.step
    url = f"{base}/restapi/personal/yourfiles/files/zip/v1"

    @step("1 POST the help page's XML sample -> a pending ZipFileJobModel in XML")
    def _():
        reply = http("POST", url, dict(AUTH, **{"Content-Type": "text/xml"}), SAMPLE.encode())
        values = model("POST", reply)
        expect("JobId is an int", values["JobId"].text.isdigit(), values["JobId"].text)
        expect("Status Pending", values["Status"].text == "Pending", values["Status"].text)
        nil = values["DownloadUrl"].get(f"{{{XSI}}}nil")
        expect("DownloadUrl is i:nil", nil == "true" and not values["DownloadUrl"].text, ET.tostring(values["DownloadUrl"]))
        expect("Created ends in Z", values["Created"].text.endswith("Z"), values["Created"].text)
        state["job"] = values["JobId"].text

    @step("2 poll in XML until Completed, then fetch the zip", needs=("job",))
    def _():
        poll = f"{base}/restapi/personal/yourfiles/files/zip/{state['job']}/v1"
        for _ in range(20):
            values = model("poll", http("GET", poll, dict(AUTH, Accept="text/xml")))
            if values["Status"].text == "Completed":
                break
            time.sleep(0.1)
        expect("Completed", values["Status"].text == "Completed", values["Status"].text)
        download = values["DownloadUrl"].text
        expect("DownloadUrl is on our origin", download.startswith(base), download)
        reply = http("GET", download)
        expect("zip 200", reply.status == 200, reply)
        zf = open_zip("download", reply.body)
        expect("entries", zf.namelist() == ["report.pdf", "report (1).pdf", "Empty/"], zf.namelist())

    @step("3 errors in XML: no token, and a body without the DataContract namespace")
    def _():
        reply = http("GET", url, {"Accept": "application/xml"})
        expect("401", reply.status == 401, reply)
        root = ET.fromstring(reply.body)
        expect("<Error><Message>", root.tag == "Error" and root.find("Message").text == "Authorization has been denied for this request.", reply.body)
        reply = http("POST", url, dict(AUTH, **{"Content-Type": "text/xml"}), b"<ZipRequest><FileIds/></ZipRequest>")
        expect("400", reply.status == 400, reply)
        root = ET.fromstring(reply.body)
        expect("The request is invalid.", root.find("Message").text == "The request is invalid.", reply.body)

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
