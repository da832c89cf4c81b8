"""A typed client for zipgate's control plane (``/_zipgate/``), on urllib alone."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:
    from .server import ZipgateServer

__all__ = [
    "Counts",
    "Fault",
    "Job",
    "JournalEntry",
    "Zipgate",
    "ZipgateConnectionError",
    "ZipgateError",
]

#: The header that carries the control token (``Authorization: Bearer`` works
#: too, but that header belongs to the vendor APIs' callers).
TOKEN_HEADER = "X-Zipgate-Control-Token"

Json = Any


class ZipgateError(Exception):
    """The control plane answered with an error status.

    ``status`` is the HTTP status; ``body`` the decoded JSON body (or its text
    when it is not JSON); ``error`` and ``message`` its ``error`` and
    ``message`` fields (``invalid_fault``, ``not_found``, ``unauthorized``, …).
    """

    def __init__(self, method: str, url: str, status: Optional[int], body: Json, message: str = "") -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        self.error: Optional[str] = body.get("error") if isinstance(body, dict) else None
        self.message: str = message or (str(body.get("message", "")) if isinstance(body, dict) else str(body or ""))
        detail = f"{self.status} {self.error}" if self.error else f"{self.status}"
        super().__init__(f"{method} {url} -> {detail}: {self.message}")


class ZipgateConnectionError(ZipgateError):
    """The control plane could not be reached (``status`` is None). When the
    server process is known to have exited, the message says so and names its
    log file."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(method, url, None, None, reason)
        Exception.__init__(self, f"{method} {url} failed: {reason}")


def parse_time(value: Optional[str]) -> Optional[datetime]:
    """An RFC 3339 time as the control plane writes it (``…Z``), aware, in UTC."""
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


@dataclass(frozen=True)
class Counts:
    """Nodes and users in the fixture tree (what seeding and reset answer)."""

    nodes: int
    users: int


@dataclass(frozen=True)
class Fault:
    """A fault rule in force, with its id and counters."""

    id: str
    #: The rule as given (``match``, ``times``, ``respond``, …), without the
    #: id and counters: it can be added again as it is.
    rule: Dict[str, Json]
    #: Requests the rule matched (including those it let through).
    matched: int
    #: Requests it acted on.
    fired: int
    #: Firings left, for a rule with ``times``; None for an unlimited one.
    remaining: Optional[int]

    @property
    def match(self) -> Dict[str, Json]:
        """The rule's ``match`` (empty: every vendor request)."""
        return dict(self.rule.get("match") or {})

    @classmethod
    def from_json(cls, data: Mapping[str, Json]) -> "Fault":
        rule = {k: v for k, v in data.items() if k not in ("id", "matched", "fired", "remaining")}
        return cls(
            id=str(data["id"]),
            rule=rule,
            matched=int(data.get("matched", 0)),
            fired=int(data.get("fired", 0)),
            remaining=data.get("remaining"),
        )


@dataclass(frozen=True)
class JournalEntry:
    """One vendor request the server received, as the journal shows it."""

    id: int
    time: datetime
    dialect: Optional[str]
    method: str
    path: str
    #: The raw query string (credential-like parameters redacted unless revealed).
    query: Optional[str]
    #: ``(name, value)`` pairs in the order received; credentials redacted
    #: unless the journal was read with ``reveal=True``.
    headers: List[Tuple[str, str]]
    #: The body as text (up to 64 KiB), or None when none was read.
    body: Optional[str]
    body_size: int
    body_truncated: bool
    #: The status answered; None while the response has not started.
    status: Optional[int]
    bytes_sent: Optional[int]
    #: Ids of the fault rules that acted on the request.
    faults: List[str]
    #: The entry's JSON as the server sent it (fields newer servers add too).
    raw: Dict[str, Json] = field(repr=False, compare=False)

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def json(self) -> Json:
        """The body parsed as JSON."""
        if self.body is None:
            raise ValueError(f"request {self.id} ({self.method} {self.path}) has no recorded body")
        return json.loads(self.body)

    @classmethod
    def from_json(cls, data: Mapping[str, Json]) -> "JournalEntry":
        return cls(
            id=int(data["id"]),
            time=parse_time(data["time"]),  # type: ignore[arg-type]
            dialect=data.get("dialect"),
            method=data["method"],
            path=data["path"],
            query=data.get("query"),
            headers=[(str(k), str(v)) for k, v in data.get("headers") or []],
            body=data.get("body"),
            body_size=int(data.get("body_size") or 0),
            body_truncated=bool(data.get("body_truncated")),
            status=data.get("status"),
            bytes_sent=data.get("bytes_sent"),
            faults=list(data.get("faults") or []),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Job:
    """A download job of any dialect, in neutral terms."""

    id: str
    dialect: str
    #: The owning user's id; None for an anonymous job.
    owner: Optional[str]
    #: ``queued``, ``running``, ``ready``, ``failed``, ``expired``, …
    state: str
    name: str
    entries: int
    files: int
    #: ``(done, of)`` steps.
    progress: Tuple[int, int]
    archive_bytes: Optional[int]
    created: datetime
    ready: Optional[datetime]
    expires: Optional[datetime]
    downloads: int
    bytes_sent: int
    error: Optional[str]
    raw: Dict[str, Json] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Json]) -> "Job":
        progress = data.get("progress") or {}
        return cls(
            id=str(data["id"]),
            dialect=data["dialect"],
            owner=data.get("owner"),
            state=data["state"],
            name=data.get("name", ""),
            entries=int(data.get("entries") or 0),
            files=int(data.get("files") or 0),
            progress=(int(progress.get("done", 0)), int(progress.get("of", 0))),
            archive_bytes=data.get("archive_bytes"),
            created=parse_time(data["created"]),  # type: ignore[arg-type]
            ready=parse_time(data.get("ready")),
            expires=parse_time(data.get("expires")),
            downloads=int(data.get("downloads") or 0),
            bytes_sent=int(data.get("bytes_sent") or 0),
            error=data.get("error"),
            raw=dict(data),
        )


def _path_segment(value: str) -> str:
    # The server matches path parameters as sent, without percent-decoding
    # them, so characters legal in a path segment (Box job ids hold `=`) are
    # left as they are.
    return urllib.parse.quote(value, safe="-._~!$&'()*+,;=:@")


class Zipgate:
    """A client for one zipgate server's control plane.

    The ``zipgate`` fixture hands one out, already reset. Every method is one
    or a few HTTP calls; an error answer raises :class:`ZipgateError`.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        server: Optional["ZipgateServer"] = None,
    ) -> None:
        #: The server's base URL (``http://127.0.0.1:PORT``), for the client under test.
        self.url = url.rstrip("/")
        #: The control token sent with every control-plane call, if any.
        self.token = token
        #: Seconds one control-plane call may take.
        self.timeout = timeout
        #: The server process, when this client belongs to one (for diagnostics).
        self.server = server
        # No proxies: the server is on loopback, whatever http_proxy says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"<Zipgate {self.url}>"

    # -- raw access ---------------------------------------------------------

    def control(
        self,
        method: str,
        path: str,
        body: Json = None,
        query: Optional[Mapping[str, Any]] = None,
    ) -> Json:
        """One control-plane call: ``method`` on ``path`` (``/_zipgate/…``) with
        ``body`` as JSON (None: no body) and ``query`` parameters (None values
        left out). Returns the decoded JSON answer; raises :class:`ZipgateError`
        on an error status."""
        url = self.url + path
        if query:
            pairs = {k: _query_value(v) for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        headers = {"Accept": "application/json"}
        if self.token:
            headers[TOKEN_HEADER] = self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            e.close()
            try:
                decoded: Json = json.loads(raw)
            except ValueError:
                decoded = raw.decode("utf-8", "replace")
            raise ZipgateError(method, url, e.code, decoded) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = str(getattr(e, "reason", e))
            if self.server is not None and not self.server.alive():
                reason += "\n" + self.server.describe_exit()
            raise ZipgateConnectionError(method, url, reason) from e
        return json.loads(text) if text else None

    # -- fixtures -------------------------------------------------------------

    def reset(self) -> Counts:
        """Back to the fixtures and fault rules the server started with; jobs,
        journal entries and added faults are forgotten (``POST /_zipgate/reset``).
        The clock keeps any advance."""
        return _counts(self.control("POST", "/_zipgate/reset"))

    def seed(self, tree: Union[Mapping[str, Json], str, "os.PathLike[str]"]) -> Counts:
        """Replaces the whole fixture tree (``PUT /_zipgate/fixtures``) with a
        fixture document (``{"users": [...], "nodes": [...]}``), given as a
        mapping or the path of a JSON file. An invalid one raises
        :class:`ZipgateError` (``invalid_fixture``, naming the JSON path) and
        leaves the old tree."""
        document = (
            json.loads(Path(tree).read_text(encoding="utf-8")) if isinstance(tree, (str, os.PathLike)) else dict(tree)
        )
        return _counts(self.control("PUT", "/_zipgate/fixtures", document))

    def add_nodes(
        self,
        nodes: Union[Mapping[str, Json], Sequence[Mapping[str, Json]]],
        parent: Optional[str] = None,
    ) -> Counts:
        """Adds fixture nodes (one node or a list) under the folder ``parent``
        (a fixture id), or at the top (``POST /_zipgate/fixtures/nodes``)."""
        listed = [dict(nodes)] if isinstance(nodes, Mapping) else [dict(n) for n in nodes]
        body: Dict[str, Json] = {"nodes": listed}
        if parent is not None:
            body["parent"] = parent
        return _counts(self.control("POST", "/_zipgate/fixtures/nodes", body))

    # -- faults ---------------------------------------------------------------

    def fault(self, **rule: Json) -> Fault:
        """Adds a fault rule given as keywords: ``match``, ``times``, ``after``,
        ``probability``, ``seed``, ``respond``, ``delay_ms``,
        ``throttle_bytes_per_sec``, ``cut``, ``job``::

            zipgate.fault(match={"method": "POST"}, times=1, respond={"status": 429})
        """
        return self.add_fault(rule)

    def add_fault(self, rule: Mapping[str, Json]) -> Fault:
        """Adds one fault rule (``POST /_zipgate/faults``); returns it with its
        id and counters. A bad rule raises :class:`ZipgateError` (``invalid_fault``)."""
        return Fault.from_json(self.control("POST", "/_zipgate/faults", dict(rule)))

    def add_faults(self, rules: Sequence[Mapping[str, Json]]) -> List[Fault]:
        """Adds several rules at once (all or none)."""
        answer = self.control("POST", "/_zipgate/faults", {"faults": [dict(r) for r in rules]})
        return [Fault.from_json(f) for f in answer["faults"]]

    def faults(self) -> List[Fault]:
        """The rules in force, oldest first, with their counters."""
        return [Fault.from_json(f) for f in self.control("GET", "/_zipgate/faults")["faults"]]

    def delete_fault(self, fault: Union[str, Fault]) -> None:
        """Removes one rule, by id or as returned by :meth:`fault`; an unknown
        id raises :class:`ZipgateError` (404 ``not_found``)."""
        fault_id = fault.id if isinstance(fault, Fault) else fault
        self.control("DELETE", "/_zipgate/faults/" + _path_segment(fault_id))

    def clear_faults(self) -> None:
        """Removes every rule, those the server started with included."""
        self.control("DELETE", "/_zipgate/faults")

    # -- the request journal --------------------------------------------------

    def requests_page(
        self,
        *,
        dialect: Optional[str] = None,
        method: Optional[str] = None,
        path_prefix: Optional[str] = None,
        status: Optional[int] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        reveal: bool = False,
    ) -> List[JournalEntry]:
        """One ``GET /_zipgate/requests``: entries with an id above ``after``,
        at most ``limit`` of them, oldest first."""
        query = {
            "dialect": dialect,
            "method": method,
            "path_prefix": path_prefix,
            "status": status,
            "after": after,
            "limit": limit,
            "reveal": "true" if reveal else None,
        }
        return self._journal_page(query)[0]

    def _journal_page(self, query: Dict[str, Any]) -> "Tuple[List[JournalEntry], Optional[int]]":
        """One listing: its entries and its ``next_after`` cursor (None at the end)."""
        answer = self.control("GET", "/_zipgate/requests", query=query)
        entries = [JournalEntry.from_json(e) for e in answer["requests"]]
        return entries, answer.get("next_after")

    def requests(
        self,
        *,
        dialect: Optional[str] = None,
        method: Optional[str] = None,
        path_prefix: Optional[str] = None,
        status: Optional[int] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        reveal: bool = False,
        page_size: int = 250,
    ) -> List[JournalEntry]:
        """Every journal entry that matches, oldest first, read ``page_size``
        at a time by following the ``after`` cursor.

        Filters: ``dialect`` (``box``, …), ``method`` (any case),
        ``path_prefix``, ``status``; ``after`` starts past an entry id;
        ``limit`` stops after that many; ``reveal`` shows credentials.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        found: List[JournalEntry] = []
        cursor = after
        while limit is None or len(found) < limit:
            want = page_size if limit is None else min(page_size, limit - len(found))
            page, next_after = self._journal_page(
                {
                    "dialect": dialect,
                    "method": method,
                    "path_prefix": path_prefix,
                    "status": status,
                    "after": cursor,
                    "limit": want,
                    "reveal": "true" if reveal else None,
                }
            )
            found.extend(page)
            # The server says where the next page starts, and null at the end.
            if next_after is None:
                break
            cursor = next_after
        return found

    def clear_requests(self) -> None:
        """Empties the journal (``DELETE /_zipgate/requests``)."""
        self.control("DELETE", "/_zipgate/requests")

    # -- jobs -------------------------------------------------------------------

    def jobs(self) -> List[Job]:
        """Every dialect's jobs, in neutral terms."""
        return [Job.from_json(j) for j in self.control("GET", "/_zipgate/jobs")["jobs"]]

    def job(self, job_id: str) -> Job:
        """One job by id; an unknown one raises :class:`ZipgateError` (404)."""
        return Job.from_json(self.control("GET", "/_zipgate/jobs/" + _path_segment(job_id)))

    # -- clock and health -----------------------------------------------------

    def clock(self) -> datetime:
        """The server's clock (UTC)."""
        return parse_time(self.control("GET", "/_zipgate/clock")["now"])  # type: ignore[return-value]

    def advance(self, seconds: Union[float, timedelta]) -> datetime:
        """Moves the server clock forward (expiry and time-paced jobs follow);
        returns the new time."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        answer = self.control("POST", "/_zipgate/clock/advance", {"seconds": float(seconds)})
        return parse_time(answer["now"])  # type: ignore[return-value]

    def health(self) -> Dict[str, Json]:
        """``GET /_zipgate/health``: version, dialects, node, user and job counts,
        streams and connections."""
        answer: Dict[str, Json] = self.control("GET", "/_zipgate/health")
        return answer


def _counts(answer: Mapping[str, Json]) -> Counts:
    return Counts(nodes=int(answer["nodes"]), users=int(answer["users"]))


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
