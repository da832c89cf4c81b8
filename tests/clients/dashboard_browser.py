#!/usr/bin/env python3
"""Drive zipgate's dashboard (/_zipgate/ui) in a real browser (Chromium through
Playwright) while real clients use the server, and check that the page follows
live, over its event stream, without a reload.

Usage: PY tests/clients/dashboard_browser.py BASE_URL TOKEN SCREENSHOT.png
  PY          .venv/bin/python (playwright, boxsdk 10.x from tests/requirements.txt)
  BASE_URL    a zipgate serving the embedded default fixture (ONLYOFFICE in its
              default Workspace flavour) with `--control-token TOKEN`
  SCREENSHOT  where the full-page screenshot goes (the README's picture); on a
              failure the page is saved next to it as <name>-failure.png

The restart step needs a driver that owns the server (tests/dashboard.rs,
`the_dashboard_works_in_a_real_browser`). They talk in lines, each flushed:
the script prints RESTART on stdout and the driver SIGKILLs the server; once
the page shows it lost the stream the script prints DOWN-SEEN, and the driver
starts a new server on the same port with the same token and writes RESTARTED
on the script's stdin (read within 20 s). No other line the script prints is
one of those words alone.

Chromium is /usr/bin/chromium (Debian's; ZIPGATE_CHROMIUM overrides), started
with --no-sandbox as the suite runs as root. Every wait is bounded (5 s by
default) and the whole run by WHOLE_RUN seconds.

Steps: 1 the page asks for the token, connects, and reports no console error
and no CSP violation; 2 a Box zip download with Box's Python SDK, downloaded:
the job row reaches the control plane's final state and the journal shows the
202 create; 3 an ONLYOFFICE bulk download as Workspace's web client makes it:
the job row reaches its final state; 3b PyPI's Workspace client (onlyoffice
0.1.0, from .venv-onlyoffice-pypi) runs its own flow: its job row turns
ready and its legacy link shows as the 404 a v12 portal gives; 4 a fault rule added from the form (a
refused one shows the server's message) makes the SDK's next create fail with
Box's 503 envelope, its row counts the firing, the screenshot is taken, and the
rule is deleted from the page; 5 the clock advanced from the page expires a
fresh Box download URL (404) and the job row turns expired; 6 a request
carrying markup is shown as text and runs nothing; 7 the page links its own
icon, so the browser never asks the vendor side for /favicon.ico; 8 the
server is killed and a new one started on the same port: the page, never
reloaded, says so, reconnects, drops the old server's rows, and follows a
new Box create live; 9 Reset empties the page; 10 one page all along, with no
console error and no CSP violation. Exits 0 when all pass; raises (exit 1)
with what was seen otherwise.
"""

import io
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

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

NAME = "dashboard_browser"
WAIT_MS = 5_000  # every Playwright wait and expect
WHOLE_RUN = 120  # seconds; a normal run takes about 15
RESTART_WAIT = 10  # seconds for the page to lose, then regain, the stream
DRIVER_WAIT = 20  # seconds for the driver's RESTARTED
CHROMIUM = os.environ.get("ZIPGATE_CHROMIUM", "/usr/bin/chromium")
TERMINAL = {"done", "failed", "cancelled", "expired"}
FILE = CreateZipDownloadItemsTypeField.FILE
OO_COOKIE = "asc_auth_key=alice-token"
PAYLOAD = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


class Failed(Exception):
    pass


def check(what, ok, actual=None):
    if not ok:
        raise Failed(f"{what}; actual: {actual!r}")


def step(label):
    print(f"--- {label}", flush=True)


def css(value):
    """A value for a double-quoted CSS attribute selector."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


# --- HTTP, without the browser -------------------------------------------------


def http(method, url, headers=None, body=None, timeout=10):
    """(status, headers, body bytes); an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


class Control:
    """The control plane, with the token."""

    def __init__(self, base, token):
        self.base = base
        self.token = token

    def call(self, method, path, body=None, want=200):
        headers = {"x-zipgate-control-token": self.token}
        data = None
        if body is not None:
            headers["content-type"] = "application/json"
            data = json.dumps(body).encode()
        status, _, raw = http(method, self.base + path, headers, data)
        if want is not None:
            check(f"{method} {path} answers {want}", status == want, (status, raw[:300]))
        return status, (json.loads(raw) if raw else None)

    def jobs(self, dialect=None):
        jobs = self.call("GET", "/_zipgate/jobs")[1]["jobs"]
        return [j for j in jobs if dialect is None or j["dialect"] == dialect]

    def job(self, job_id):
        return self.call("GET", f"/_zipgate/jobs/{urllib.parse.quote(job_id, safe='')}")[1]

    def faults(self):
        return self.call("GET", "/_zipgate/faults")[1]["faults"]

    def requests(self, **filters):
        query = urllib.parse.urlencode(filters)
        return self.call("GET", f"/_zipgate/requests?{query}")[1]["requests"]

    def clock(self):
        return parse_time(self.call("GET", "/_zipgate/clock")[1]["now"])

    def new_job(self, dialect, before):
        """The one job of `dialect` whose id is not in `before`."""
        new = [j for j in self.jobs(dialect) if j["id"] not in before]
        check(f"exactly one new {dialect} job in /_zipgate/jobs", len(new) == 1, new)
        return new[0]

    def settled(self, job_id, done=lambda j: j["state"] in TERMINAL, what="a final state"):
        """The job once `done` holds (within the wait), as /_zipgate/jobs shows it."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            job = self.job(job_id)
            if done(job):
                return job
            check(f"job {job_id} reaches {what} within {WAIT_MS} ms", time.monotonic() < deadline, job)
            time.sleep(0.05)


def parse_time(text):
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def open_zip(what, data):
    check(f"{what}: a zip (PK\\3\\4)", data[:4] == b"PK\x03\x04", data[:16])
    zf = zipfile.ZipFile(io.BytesIO(data))
    check(f"{what}: every entry reads back", zf.testzip() is None, zf.namelist())
    return zf


def box_client(base, token="alice-token"):
    return BoxClient(
        auth=BoxDeveloperTokenAuth(token=token),
        network_session=NetworkSession(
            base_urls=BaseUrls(base_url=base, upload_url=base + "/api", oauth_2_url=base + "/oauth2"),
            retry_strategy=BoxRetryStrategy(max_attempts=1, max_retries_on_exception=0),
        ),
    )


# --- the browser side ------------------------------------------------------------


class Watch:
    """What the page reports that it should not: console errors, uncaught
    exceptions, CSP violations; and every request it makes."""

    def __init__(self, page, token):
        self.token = token
        self.phase = "before-token"  # which answers a console error may be about
        self.errors = []
        self.requests = []
        page.on("console", self.on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("request", lambda req: self.requests.append((self.phase, req.method, req.url, req.headers)))
        # Runs before the page's own script, outside its CSP (Playwright
        # injects it), and only listens.
        page.add_init_script(
            "window.__csp = [];"
            "document.addEventListener('securitypolicyviolation', e =>"
            " window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));"
        )

    def on_console(self, msg):
        if msg.type != "error":
            return
        text = msg.text
        url = (msg.location or {}).get("url", "")
        # Chromium logs every non-2xx answer to fetch as a console error. The
        # page's calls before it has the token answer 401 (that is how it
        # learns it needs one), step 4 sends a rule the server refuses, and
        # while step 8 has the server down its calls fail at the network.
        if text.startswith("Failed to load resource"):
            if self.phase == "before-token" and "status of 401" in text and "/_zipgate/" in url:
                return
            if self.phase == "restart" and "net::ERR_" in text and "/_zipgate/" in url:
                return
            if self.phase == "bad-fault" and "status of 400" in text and url.endswith("/_zipgate/faults"):
                return
        self.errors.append(f"console error [{self.phase}]: {text} ({url})")

    def assert_clean(self, page, what):
        violations = page.evaluate("window.__csp")
        check(f"{what}: no CSP violation was reported", not violations, violations)
        check(f"{what}: no console error and no uncaught exception", not self.errors, self.errors)

    def assert_token_use(self, base):
        """After the token was saved, every control call carried it as a
        header, and no URL the page asked for ever held it."""
        for phase, method, url, headers in self.requests:
            check("the token never appears in a URL", self.token not in url, url)
            path = urllib.parse.urlsplit(url).path
            if phase == "before-token" or not url.startswith(base):
                continue
            if path.startswith("/_zipgate/") and not path.startswith("/_zipgate/ui") and path != "/_zipgate/health":
                check(
                    f"{method} {path} carries x-zipgate-control-token",
                    headers.get("x-zipgate-control-token") == self.token,
                    headers,
                )


def clock_shown(page):
    return parse_time(page.text_content("#clock-now"))


def driver(word):
    """One line of the restart protocol to the driver, on stdout."""
    print(word, flush=True)


def from_driver(expected, timeout=DRIVER_WAIT):
    """The driver's next line on stdin, which must be `expected`."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    check(f"the driver writes {expected} on stdin within {timeout} s (run by tests/dashboard.rs?)", ready, None)
    line = sys.stdin.readline()
    check(f"the driver writes {expected} on stdin", line.strip() == expected, line)


def wait_until(what, fn, timeout=WAIT_MS / 1000):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        check(f"{what} within {timeout:.0f} s", time.monotonic() < deadline, value)
        time.sleep(0.1)


def run(p, base, token, shot):
    ctl = Control(base, token)
    alice = box_client(base)
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=20_000)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watch = Watch(page, token)
    try:
        steps(page, watch, ctl, alice, base, token, shot)
    except BaseException:
        failure = Path(shot).with_name(Path(shot).stem + "-failure.png")
        try:
            page.screenshot(path=str(failure), full_page=True, timeout=WAIT_MS)
            print(f"{NAME}: the page at the failure is {failure}", file=sys.stderr)
        except Exception as e:  # the browser may be what failed
            print(f"{NAME}: no failure screenshot ({e})", file=sys.stderr)
        if watch.errors:
            print(f"{NAME}: the page reported: {watch.errors}", file=sys.stderr)
        raise
    finally:
        browser.close()


def steps(page, watch, ctl, alice, base, token, shot):
    step("1 the page asks for the token, then connects")
    response = page.goto(base + "/_zipgate/ui", wait_until="domcontentloaded")
    check("GET /_zipgate/ui answers 200", response is not None and response.status == 200, response and response.status)
    csp = response.headers.get("content-security-policy", "")
    check("the page comes with its Content-Security-Policy", "default-src 'self'" in csp, csp)
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("reconnecting…")
    check("no token is stored yet", page.evaluate("sessionStorage.getItem('zipgate-token')") is None)
    page.fill("#token-input", token)
    watch.phase = "live"
    page.click("#token-save")
    expect(page.locator("#token-form")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#conn")).to_have_text("live")
    check(
        "the token is in sessionStorage",
        page.evaluate("sessionStorage.getItem('zipgate-token')") == token,
        page.evaluate("sessionStorage.getItem('zipgate-token')"),
    )
    version = ctl.call("GET", "/_zipgate/health")[1]["version"]
    expect(page.locator("#version")).to_contain_text(version)
    watch.phase = "running"
    # Gone after a reload: proves at the end that the page never reloaded.
    page.evaluate("window.__same_page = 'yes'")
    watch.assert_clean(page, "after connecting")

    step("2 Box: create_zip_download + get_zip_download_content with Box's Python SDK")
    before = {j["id"] for j in ctl.jobs("box")}
    zd = alice.zip_downloads.create_zip_download(
        [CreateZipDownloadItems(type=FILE, id="12345"), CreateZipDownloadItems(type=FILE, id="34325")],
        download_file_name="Dashboard",
    )
    data = alice.zip_downloads.get_zip_download_content(zd.download_url).read()
    names = open_zip("the Box archive", data).namelist()
    check("the Box archive holds the two renamed reports", len(names) == 2 and all(n.endswith(".pdf") for n in names), names)
    box_job = ctl.settled(ctl.new_job("box", before)["id"])
    check("the downloaded single-use Box job is done", box_job["state"] == "done", box_job)
    row = page.locator(f'#jobs-body tr[data-job-id="{css(box_job["id"])}"]')
    expect(row).to_have_attribute("data-state", box_job["state"])
    expect(row.locator("td.job-dialect")).to_have_text("box")
    expect(row.locator("td.job-bytes")).to_have_attribute("data-bytes", str(box_job["bytes_sent"]))
    expect(row.locator(".badge")).to_have_class("badge state-done")
    creates = [r for r in ctl.requests(dialect="box", method="POST", status="202") if r["path"] == "/2.0/zip_downloads"]
    check("the journal holds the 202 create", len(creates) == 1, creates)
    entry = page.locator(f'#requests-body tr.req[data-request-id="{creates[0]["id"]}"]')
    expect(entry).to_have_attribute("data-method", "POST")
    expect(entry).to_have_attribute("data-status", "202")
    expect(entry).to_have_attribute("data-dialect", "box")
    expect(entry.locator("td.req-path")).to_have_text("/2.0/zip_downloads")
    content = [r for r in ctl.requests(dialect="box", method="GET") if r["path"].endswith("/content")]
    check("the journal holds the content GET", len(content) == 1, content)
    expect(page.locator(f'#requests-body tr.req[data-request-id="{content[0]["id"]}"]')).to_have_attribute("data-status", "200")

    step("3 ONLYOFFICE: bulkdownload, poll fileops, download the url, as Workspace's web client does")
    before = {j["id"] for j in ctl.jobs("onlyoffice")}
    json_headers = {"Cookie": OO_COOKIE, "Content-Type": "application/json", "Accept": "application/json"}
    status, _, raw = http(
        "PUT", base + "/api/2.0/files/fileops/bulkdownload", json_headers, json.dumps({"fileIds": ["12348", "12345"]}).encode()
    )
    check("bulkdownload answers 200", status == 200, (status, raw[:300]))
    op_id = json.loads(raw)["response"][0]["id"]
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        status, _, raw = http("GET", base + "/api/2.0/files/fileops", {"Cookie": OO_COOKIE, "Accept": "application/json"})
        check("fileops answers 200", status == 200, (status, raw[:300]))
        mine = [op for op in json.loads(raw)["response"] or [] if op["id"] == op_id]
        check("the operation is listed until it finishes", len(mine) == 1, raw[:500])
        if mine[0]["finished"]:
            break
        check("the operation finishes in time", time.monotonic() < deadline, mine[0])
        time.sleep(0.1)
    op = mine[0]
    check("the operation finished without an error and with a url", not op["error"] and op["url"], op)
    status, _, data = http("GET", op["url"], {"Cookie": OO_COOKIE})
    check("the archive url answers 200", status == 200, (status, data[:200]))
    names = sorted(open_zip("the ONLYOFFICE archive", data).namelist())
    check("the ONLYOFFICE archive holds notes.md and report.pdf", names == ["notes.md", "report.pdf"], names)
    oo_job = ctl.new_job("onlyoffice", before)
    oo_job = ctl.settled(
        oo_job["id"],
        lambda j: j["downloads"] >= 1 and j["bytes_sent"] >= len(data) and j["state"] not in ("queued", "running", "downloading"),
        "its state after one download",
    )
    row = page.locator(f'#jobs-body tr[data-job-id="{css(oo_job["id"])}"]')
    expect(row).to_have_attribute("data-state", oo_job["state"])
    expect(row.locator("td.job-dialect")).to_have_text("onlyoffice")
    expect(row.locator("td.job-bytes")).to_have_attribute("data-bytes", str(oo_job["bytes_sent"]))
    expect(row.locator("td.job-bytes")).to_have_attribute("data-downloads", str(oo_job["downloads"]))

    step("3b ONLYOFFICE with a real client: PyPI's Workspace client onlyoffice 0.1.0 (create, poll "
         "fileops every 2 s, then its own legacy link, an empty 404 on a v12 portal)")
    before = {j["id"] for j in ctl.jobs("onlyoffice")}
    # Its own venv: it pins requests<2.29 (see tests/clients/onlyoffice_pypi.py).
    python = Path(__file__).resolve().parents[2] / ".venv-onlyoffice-pypi" / "bin" / "python"
    client = (
        "import sys\n"
        "from onlyoffice import OnlyOffice\n"
        "ok = OnlyOffice(sys.argv[1], 'alice@example.com', 'alice-password').download(['12348', '12345'], sys.argv[2])\n"
        "print('download returned', ok)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        ran = subprocess.run([str(python), "-c", client, base, os.path.join(tmp, "out.zip")],
                             capture_output=True, text=True, timeout=60)
    check("the PyPI client's download returns True", ran.returncode == 0 and "download returned True" in ran.stdout,
          (ran.returncode, ran.stdout[-300:], ran.stderr[-800:]))
    pypi_job = ctl.new_job("onlyoffice", before)
    pypi_job = ctl.settled(pypi_job["id"], lambda j: j["state"] == "ready", "ready (finished, never downloaded)")
    expect(page.locator(f'#jobs-body tr[data-job-id="{css(pypi_job["id"])}"]')).to_have_attribute("data-state", "ready")
    legacy = [r for r in ctl.requests(dialect="onlyoffice", method="GET")
              if "filehandler.ashx" in r["path"] and "ext=.zip" in (r.get("query") or "")]
    check("the client's legacy link is in the journal, answered 404", len(legacy) == 1 and legacy[0]["status"] == 404, legacy)
    expect(page.locator(f'#requests-body tr.req[data-request-id="{legacy[0]["id"]}"]')).to_have_attribute("data-status", "404")

    step("4 a fault rule from the form: Box's create answers 503 once")
    check("no fault rule in force yet", ctl.faults() == [], ctl.faults())
    page.select_option("#fault-dialect", "box")
    page.fill("#fault-method", "POST")
    page.fill("#fault-path", "/2.0/zip_downloads")
    page.fill("#fault-message", "")
    page.fill("#fault-times", "1")
    # A refused rule first: the page shows the server's own message.
    page.fill("#fault-status", "200")
    refused = ctl.call(
        "POST",
        "/_zipgate/faults",
        {"match": {"dialect": "box", "method": "POST", "path": "/2.0/zip_downloads"}, "respond": {"status": 200}, "times": 1},
        want=400,
    )[1]
    watch.phase = "bad-fault"
    page.click("#fault-add")
    expect(page.locator("#fault-error")).to_contain_text(refused["message"])
    watch.phase = "running"
    page.fill("#fault-status", "503")
    page.click("#fault-add")
    expect(page.locator("#fault-error")).to_have_text("")
    rules = wait_until("the rule reaches the server", ctl.faults)
    check("one rule, as the form described it", len(rules) == 1, rules)
    rule = rules[0]
    check(
        "the rule is box POST /2.0/zip_downloads -> 503, times 1",
        rule["match"] == {"dialect": "box", "method": "POST", "path": "/2.0/zip_downloads"}
        and rule["respond"] == {"status": 503}
        and rule.get("times") == 1,
        rule,
    )
    fault_row = page.locator(f'#faults-body tr[data-fault-id="{css(rule["id"])}"]')
    expect(fault_row).to_be_visible()
    expect(fault_row.locator("td.fault-match")).to_have_text("box POST /2.0/zip_downloads")
    expect(fault_row.locator("td.fault-fired")).to_have_text("0")
    try:
        result = alice.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FILE, id="12345")])
        raise Failed(f"create_zip_download under the rule: expected BoxAPIError 503; it returned {result!r}")
    except BoxAPIError as e:
        ri = e.response_info
        check("the SDK's BoxAPIError has status 503", ri.status_code == 503, ri.status_code)
        envelope = json.loads(ri.raw_body)
        check(
            "the body is Box's error envelope (type error, status 503, a code)",
            envelope.get("type") == "error" and envelope.get("status") == 503 and envelope.get("code"),
            envelope,
        )
    expect(fault_row.locator("td.fault-fired")).to_have_text("1")
    expect(fault_row.locator("td.fault-fired")).to_have_attribute("data-fired", "1")
    expect(fault_row.locator("td.fault-remaining")).to_have_text("0")
    faulted = [r for r in ctl.requests(dialect="box", status="503")]
    check("the journal holds the 503 with the rule's id", len(faulted) == 1 and faulted[0]["faults"] == [rule["id"]], faulted)
    faulted_row = page.locator(f'#requests-body tr.req[data-request-id="{faulted[0]["id"]}"]')
    expect(faulted_row.locator("td.req-faults")).to_have_text(rule["id"])
    # The picture: jobs of two dialects, a rule that fired, the journal with
    # the ONLYOFFICE create opened.
    puts = ctl.requests(dialect="onlyoffice", method="PUT")
    page.locator(f'#requests-body tr.req[data-request-id="{puts[0]["id"]}"]').click()
    expect(page.locator(f'#requests-body tr.req-detail[data-request-id="{puts[0]["id"]}"] pre.body')).to_contain_text("12348")
    page.mouse.move(0, 0)
    page.screenshot(path=shot, full_page=True)
    print(f"{NAME}: screenshot {shot}")
    page.locator(f'#requests-body tr.req[data-request-id="{puts[0]["id"]}"]').click()
    fault_row.locator("button.fault-delete").click()
    expect(fault_row).to_have_count(0)
    expect(page.locator("#faults-empty")).to_be_visible()
    check("the rule is gone from /_zipgate/faults", ctl.faults() == [], ctl.faults())

    step("5 the clock advanced from the page expires a fresh Box download URL")
    before = {j["id"] for j in ctl.jobs("box")}
    zd = alice.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FILE, id="12345")])
    fresh = ctl.new_job("box", before)
    check("the new Box job is ready", fresh["state"] == "ready", fresh)
    row = page.locator(f'#jobs-body tr[data-job-id="{css(fresh["id"])}"]')
    expect(row).to_have_attribute("data-state", "ready")
    server_before = ctl.clock()
    shown_before = clock_shown(page)
    page.fill("#clock-seconds", "120")
    page.click("#clock-advance")
    expect(page.locator("#clock-error")).to_have_text("")
    shown = wait_until(
        "the page's clock jumps by 120 s",
        lambda: (lambda t: t if t - shown_before >= timedelta(seconds=119) else None)(clock_shown(page)),
    )
    server_after = ctl.clock()
    check("the server clock moved by at least 120 s", server_after - server_before >= timedelta(seconds=120), (server_before, server_after))
    check("the page shows the server's clock (within 3 s)", abs(shown - server_after) <= timedelta(seconds=3), (shown, server_after))
    status, _, raw = http("GET", zd.download_url)
    check("the expired download_url answers 404", status == 404, (status, raw[:300]))
    envelope = json.loads(raw)
    check("with Box's not_found envelope", envelope.get("type") == "error" and envelope.get("code") == "not_found", envelope)
    expect(row).to_have_attribute("data-state", "expired")

    step("6 a request carrying markup is shown as text")
    url = f"{base}/2.0/zip_downloads?note={urllib.parse.quote(PAYLOAD, safe='')}"
    status, _, raw = http(
        "POST", url, {"Authorization": "Bearer alice-token", "Content-Type": "text/plain"}, PAYLOAD.encode()
    )
    check("Box refuses the text body with 400", status == 400, (status, raw[:300]))
    marked = [r for r in ctl.requests(dialect="box", method="POST") if r["body"] == PAYLOAD]
    check("the journal holds the body as sent", len(marked) == 1, marked)
    rid = marked[0]["id"]
    entry = page.locator(f'#requests-body tr.req[data-request-id="{rid}"]')
    expect(entry).to_have_attribute("data-status", "400")
    entry.click()
    detail = page.locator(f'#requests-body tr.req-detail[data-request-id="{rid}"]')
    expect(detail.locator("pre.body")).to_have_text(PAYLOAD)
    expect(detail).to_contain_text("<script>window.__xss=1</script>")
    expect(detail.locator("pre.headers")).to_contain_text("content-type: text/plain")
    expect(detail).to_contain_text(marked[0]["query"])
    check("the row and its details read the markup as text", "<script>" in entry.text_content() + detail.text_content())
    check("nothing ran: window.__xss is undefined", page.evaluate("typeof window.__xss") == "undefined", page.evaluate("window.__xss"))
    made = page.evaluate("document.querySelectorAll('main script, main img, main iframe, main object').length")
    check("no script, img, iframe or object element in the page's sections", made == 0, made)
    # The filters: by dialect, by status class.
    page.select_option("#filter-dialect", "onlyoffice")
    expect(entry).to_be_hidden()
    expect(page.locator('#requests-body tr.req[data-dialect="onlyoffice"]').first).to_be_visible()
    page.select_option("#filter-dialect", "")
    page.fill("#filter-status", "4xx")
    expect(entry).to_be_visible()
    expect(page.locator(f'#requests-body tr.req[data-request-id="{creates[0]["id"]}"]')).to_be_hidden()
    page.fill("#filter-status", "")
    expect(page.locator(f'#requests-body tr.req[data-request-id="{creates[0]["id"]}"]')).to_be_visible()

    listings = [url for phase, method, url, _ in watch.requests if phase == "running" and "/_zipgate/requests" in url]
    check("the journal came over the event stream alone: the page never listed it again", not listings, listings)

    step("7 the page's icon is its own: nothing asked for /favicon.ico")
    expect(page.locator('head link[rel="icon"]')).to_have_attribute("href", "/_zipgate/ui/favicon.svg")
    status, headers, raw = http("GET", base + "/_zipgate/ui/favicon.svg")
    check("GET /_zipgate/ui/favicon.svg answers 200", status == 200, (status, raw[:200]))
    check("as image/svg+xml", headers.get("content-type") == "image/svg+xml", headers.get("content-type"))
    guesses = [r for r in ctl.requests() if r["path"] == "/favicon.ico"]
    check("no journal entry has path /favicon.ico", not guesses, guesses)

    step("8 the server restarts under the page: it reconnects, starts over, and follows live")
    check("the page shows jobs before the restart", page.locator("#jobs-body tr").count() > 0)
    check("the page shows journal entries before the restart", page.locator("#requests-body tr").count() > 0)
    watch.phase = "restart"
    driver("RESTART")
    expect(page.locator("#conn")).to_have_text("reconnecting…", timeout=RESTART_WAIT * 1000)
    driver("DOWN-SEEN")
    from_driver("RESTARTED")
    expect(page.locator("#conn")).to_have_text("live", timeout=RESTART_WAIT * 1000)
    check("the page was not reloaded to get there", page.evaluate("window.__same_page") == "yes")
    check("the new server has no jobs", ctl.jobs() == [], ctl.jobs())
    expect(page.locator("#jobs-body tr")).to_have_count(0)
    expect(page.locator("#jobs-empty")).to_be_visible()
    expect(page.locator("#requests-body tr")).to_have_count(0)
    expect(page.locator("#requests-empty")).to_be_visible()
    expect(page.locator("#notice")).to_be_hidden()
    watch.phase = "running"
    alice.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FILE, id="12345")])
    fresh = ctl.new_job("box", set())
    check("the new server's Box job is ready", fresh["state"] == "ready", fresh)
    row = page.locator(f'#jobs-body tr[data-job-id="{css(fresh["id"])}"]')
    expect(row).to_have_attribute("data-state", "ready")
    expect(row.locator("td.job-dialect")).to_have_text("box")
    expect(page.locator("#jobs-body tr")).to_have_count(1)
    creates = [r for r in ctl.requests(dialect="box", method="POST", status="202") if r["path"] == "/2.0/zip_downloads"]
    check("the new server's journal holds the one 202 create", len(creates) == 1, creates)
    expect(page.locator(f'#requests-body tr.req[data-request-id="{creates[0]["id"]}"]')).to_have_attribute("data-status", "202")
    expect(page.locator("#conn")).to_have_text("live")

    step("9 Reset empties jobs and journal")
    page.click("#reset")
    expect(page.locator("#jobs-body tr")).to_have_count(0)
    expect(page.locator("#requests-body tr")).to_have_count(0)
    check("/_zipgate/jobs is empty after the reset", ctl.jobs() == [], ctl.jobs())
    expect(page.locator("#conn")).to_have_text("live")

    step("10 one page all along, clean")
    check("the page was never reloaded", page.evaluate("window.__same_page") == "yes")
    watch.assert_clean(page, "at the end")
    watch.assert_token_use(base)


def main():
    if len(sys.argv) != 4:
        print(f"usage: {NAME}.py BASE_URL TOKEN SCREENSHOT.png", file=sys.stderr)
        sys.exit(2)
    base, token, shot = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]

    def too_long(*_):
        raise TimeoutError(f"{NAME}: the run took over {WHOLE_RUN} s")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(WHOLE_RUN)
    t0 = time.monotonic()
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        run(p, base, token, shot)
    signal.alarm(0)
    print(f"{NAME}: all steps passed in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
