"""Runs schemathesis against zipgate's own routes under /_zipgate/, as
described by docs/openapi.json (or, with --from-url, by the document the
server itself serves at /_zipgate/openapi.json).

    control_schemathesis.py BASE_URL [--from-url] [--max-examples N] [--seed N]
    (from the repository: .venv/bin/python tests/clients/control_schemathesis.py …)

BASE_URL is a running server (`zipgate serve --listen 127.0.0.1:0` prints
it); ZIPGATE_CONTROL_TOKEN is the server's --control-token, if it has one.
With a token, the control routes' security is made required for the run, so
schemathesis also checks that requests without it (or with another) are
refused.

Before schemathesis runs, the server is reset and given a job, journal
entries and a fault rule (through a vendor route and the control plane), and
those listings are checked against the document's schemas: schemathesis
itself sends requests to /_zipgate/ only, which are never journaled. After
the run the server is reset again (the run replaces the tree, adds rules and
moves the clock; the clock stays moved).

Checks: every schemathesis check but positive_data_acceptance (a fixture or
a zip request can have the schema's shape and still be refused: duplicate
ids, an unknown owner, an id that is not in the tree) and
object_level_authorization (one identity only). Bounded by --max-examples per
operation, in schemathesis' deterministic mode (the same cases every run;
--seed N draws others, reproducibly) with one worker, so the order of state
changes (reset, PUT fixtures) is the same on every run. Exits non-zero on any
failure, with schemathesis' own report (each failure with a curl line) and a
summary.
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "openapi.json"
TOKEN_HEADER = "X-Zipgate-Control-Token"
# The default fixture's user whose token POST /_zipgate/zip is sent with.
USER_TOKEN = "alice-token"
EXCLUDED_CHECKS = ["positive_data_acceptance", "object_level_authorization"]
# A whole run is bounded here too, whatever schemathesis does.
RUN_TIMEOUT = 300


def schemathesis_bin():
    here = Path(sys.executable).parent / "schemathesis"
    if here.exists():
        return str(here)
    venv = ROOT / ".venv" / "bin" / "schemathesis"
    return str(venv) if venv.exists() else "schemathesis"


def call(base, method, path, body=None, token=None, headers=None):
    """One request; (status, parsed JSON or raw bytes)."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    request = urllib.request.Request(base + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, ctype = response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        status, raw, ctype = error.code, error.read(), error.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return status, json.loads(raw)
    return status, raw


def load_schema(base, from_url, token):
    if not from_url:
        return json.loads(SCHEMA_FILE.read_text())
    status, doc = call(base, "GET", "/_zipgate/openapi.json", token=token)
    if status != 200 or not isinstance(doc, dict):
        sys.exit(f"GET {base}/_zipgate/openapi.json answered {status}, not the OpenAPI document")
    return doc


def for_this_server(doc, base, token):
    """The document as this run uses it: security required when the server
    has a token; the openapi.json operation left out while the server does
    not serve it yet (404). Returns (doc, notes)."""
    doc = copy.deepcopy(doc)
    notes = []
    if token:
        for item in doc["paths"].values():
            for operation in item.values():
                security = operation.get("security")
                if isinstance(security, list) and any("controlBearer" in s for s in security):
                    operation["security"] = [s for s in security if s]
        notes.append("control token given: control routes' security made required for this run")
    # An event stream never ends: a fuzzer's request would wait for its
    # whole timeout. tests/dashboard.rs covers it.
    if "/_zipgate/events" in doc["paths"]:
        del doc["paths"]["/_zipgate/events"]
        notes.append("GET /_zipgate/events (an endless event stream) is left out; tests/dashboard.rs covers it")
    status, _ = call(base, "GET", "/_zipgate/openapi.json", token=token)
    if status == 404 and "/_zipgate/openapi.json" in doc["paths"]:
        del doc["paths"]["/_zipgate/openapi.json"]
        notes.append("GET /_zipgate/openapi.json answers 404 (not served yet): that operation is left out")
    return doc, notes


def seed_and_check(base, doc, token):
    """Puts a job, journal entries and a fault rule in the server and checks
    the listings against the document's schemas (schemathesis' own requests
    never reach the journal). Returns a list of problems."""
    import jsonschema_rs  # schemathesis' own validator

    def validate(value, name):
        # The document is the schema's root, so its `#/components/...` refs resolve.
        schema = dict(doc, **{"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": f"#/components/schemas/{name}"})
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        return [f"{name} at /{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(value)]

    problems = []

    def expect(status, want, what):
        if status != want:
            problems.append(f"{what}: status {status}, expected {want}")

    status, _ = call(base, "POST", "/_zipgate/reset", token=token)
    expect(status, 200, "POST /_zipgate/reset")
    # A Box job (and two journal entries: the create and the download).
    status, created = call(
        base, "POST", "/2.0/zip_downloads", token=USER_TOKEN,
        body={"items": [{"type": "file", "id": "12345"}], "download_file_name": "seed"},
    )
    expect(status, 202, "POST /2.0/zip_downloads")
    if status == 202 and isinstance(created, dict):
        path = created["download_url"].split("://", 1)[1].split("/", 1)[1]
        status, _ = call(base, "GET", "/" + path + "?access_token=hidden", headers={"Cookie": "a=b"})
        expect(status, 200, "GET download_url")
    # A rule with every field set (on a path no request takes), and one that
    # answers the next Box create with a 429, so a journal entry names it.
    status, view = call(
        base, "POST", "/_zipgate/faults", token=token,
        body={"match": {"dialect": "box", "method": "GET", "path": "/never/*", "user": "alice"},
              "times": 3, "after": 1, "probability": 0.5, "seed": 7,
              "respond": {"status": 503, "message": "seeded", "headers": {"retry-after": "1"}},
              "delay_ms": 1, "throttle_bytes_per_sec": 1000, "cut": {"after_bytes": 10},
              "job": {"stuck": "queued"}},
    )
    expect(status, 201, "POST /_zipgate/faults (one rule)")
    problems += validate(view, "FaultView")
    status, added = call(
        base, "POST", "/_zipgate/faults", token=token,
        body=[{"match": {"method": "POST", "path": "/2.0/zip_downloads"}, "times": 1, "respond": {"status": 429}}],
    )
    expect(status, 201, "POST /_zipgate/faults (an array)")
    problems += validate(added, "FaultList")
    status, _ = call(base, "POST", "/2.0/zip_downloads", token=USER_TOKEN, body={"items": []})
    expect(status, 429, "POST /2.0/zip_downloads (the injected fault)")
    for path, name in [
        ("/_zipgate/jobs", "JobList"),
        ("/_zipgate/requests", "JournalListing"),
        ("/_zipgate/requests?reveal=true&limit=1", "JournalListing"),
        ("/_zipgate/faults", "FaultList"),
        ("/_zipgate/clock", "Clock"),
    ]:
        status, value = call(base, "GET", path, token=token)
        expect(status, 200, f"GET {path}")
        problems += validate(value, name)
        if name in ("JobList", "JournalListing", "FaultList") and not next(iter(value.values()), None):
            problems.append(f"GET {path}: expected a non-empty listing, got {value}")
    if token:
        # The token in its own header, and none at all.
        status, value = call(base, "GET", "/_zipgate/clock", headers={TOKEN_HEADER: token})
        expect(status, 200, f"GET /_zipgate/clock with {TOKEN_HEADER}")
        status, value = call(base, "GET", "/_zipgate/clock")
        expect(status, 401, "GET /_zipgate/clock without the token")
        problems += validate(value, "Error")
    status, health = call(base, "GET", "/_zipgate/health")
    expect(status, 200, "GET /_zipgate/health")
    problems += validate(health, "Health")
    status, job_list = call(base, "GET", "/_zipgate/jobs", token=token)
    if status == 200 and job_list.get("jobs"):
        status, job = call(base, "GET", "/_zipgate/jobs/" + job_list["jobs"][0]["id"], token=token)
        expect(status, 200, "GET /_zipgate/jobs/{id}")
        problems += validate(job, "Job")
    return problems


CONFIG = """\
[cache]
enabled = false

[generation]
database = "none"

[auth.openapi.userBearer]
bearer = {user_token}
"""

TOKEN_CONFIG = """
[auth.openapi.controlBearer]
bearer = {token}

[auth.openapi.controlTokenHeader]
api_key = {token}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the server's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--from-url", action="store_true", help="load the schema from BASE/_zipgate/openapi.json, not docs/openapi.json")
    parser.add_argument("--max-examples", type=int, default=20, help="test cases per operation and phase (default 20; 30 cost the 20-minute CI ~10 s)")
    parser.add_argument("--seed", type=int, default=None, help="draw cases from this seed instead of the deterministic set")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers (default 1: the same order of state changes every run)")
    args = parser.parse_args()
    base = args.base.rstrip("/")
    token = os.environ.get("ZIPGATE_CONTROL_TOKEN") or None
    started = time.monotonic()

    doc, notes = for_this_server(load_schema(base, args.from_url, token), base, token)
    for note in notes:
        print(f"note: {note}")
    try:
        problems = seed_and_check(base, doc, token)
        for problem in problems:
            print(f"FAIL (seeded listings): {problem}")
        code, summary = run_schemathesis(base, doc, token, args)
    finally:
        # The run replaced the tree and added rules: leave the server as it
        # started (the clock stays where the run moved it).
        status, _ = call(base, "POST", "/_zipgate/reset", token=token)
    if status != 200:
        problems.append(f"final POST /_zipgate/reset: status {status}")
    elapsed = time.monotonic() - started
    print()
    print("=== control_schemathesis summary ===")
    for line in summary:
        print(line)
    print(f"schemathesis exit code {code}")
    print('("Failed to extract data from response" under Stateful tests is not a failure: a link\'s list was empty)')
    print(f"seeded listings checked against the schemas: {len(problems)} problems")
    for problem in problems:
        print(f"  {problem}")
    print(f"total time {elapsed:.1f} s")
    ok = code == 0 and not problems
    print("control_schemathesis: " + ("passed" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def run_schemathesis(base, doc, token, args):
    """Runs the CLI on `doc`; its exit code and a summary of its report."""
    with tempfile.TemporaryDirectory(prefix="zipgate-schemathesis-") as tmp:
        schema_path = Path(tmp) / "openapi.json"
        schema_path.write_text(json.dumps(doc))
        # JSON strings are TOML basic strings.
        config = CONFIG.format(user_token=json.dumps(USER_TOKEN))
        if token:
            config += TOKEN_CONFIG.format(token=json.dumps(token))
        config_path = Path(tmp) / "schemathesis.toml"
        config_path.write_text(config)
        command = [
            schemathesis_bin(), "--config-file", str(config_path), "--no-color",
            "run", str(schema_path),
            "--url", base,
            "--checks", "all",
            "--exclude-checks", ",".join(EXCLUDED_CHECKS),
            "--max-examples", str(args.max_examples),
            *(["--generation-deterministic"] if args.seed is None else ["--seed", str(args.seed)]),
            "--workers", str(args.workers),
            "--request-timeout", "30",
            "--continue-on-failure",
            "--suppress-health-check", "all",
            "--report", "json",
            "--report-dir", tmp,
        ]
        print("running:", " ".join(command), flush=True)
        try:
            code = subprocess.run(command, cwd=tmp, timeout=RUN_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            print(f"FAIL: schemathesis did not finish within {RUN_TIMEOUT} s")
            code = 124
        return code, summarize(Path(tmp))


def summarize(directory):
    """What schemathesis' JSON report says, in a few lines."""
    reports = sorted(directory.glob("json-*.json"))
    if not reports:
        return ["schemathesis wrote no JSON report"]
    try:
        report = json.loads(reports[-1].read_text())
        operations, cases = report["operations"], report["test_cases"]
        lines = [
            f"schemathesis {report['schemathesis_version']}: {operations['tested']}/{operations['selected']} operations tested, "
            f"{cases['generated']} test cases, {cases['unique_failures']} unique failures, "
            f"{len(report.get('errors') or [])} errors, {report['running_time']:.1f} s"
        ]
        for failure in report.get("failures") or []:
            lines.append(f"  {failure['code']} {failure['title']} x{failure['count']}: {', '.join(failure['operations'])}")
        for error in report.get("errors") or []:
            lines.append(f"  error: {json.dumps(error)[:300]}")
        return lines
    except (ValueError, KeyError, TypeError) as error:
        return [f"unreadable JSON report: {error}"]


if __name__ == "__main__":
    main()
