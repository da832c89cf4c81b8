"""pytest-zipgate: zipgate in a pytest session.

The ``zipgate`` fixture is a :class:`Zipgate` client for a server the session
shares, reset before each test::

    def test_download(zipgate):
        zipgate.seed({"users": [...], "nodes": [...]})
        zipgate.fault(match={"method": "POST"}, times=1, respond={"status": 429})
        client = MyBoxClient(base_url=zipgate.url)
        ...
        assert [r.status for r in zipgate.requests(method="POST")] == [429, 202]

The client and the process runner work without pytest too.
"""

from .client import (
    Counts,
    Fault,
    Job,
    JournalEntry,
    Zipgate,
    ZipgateConnectionError,
    ZipgateError,
)
from .server import (
    Binary,
    ZipgateNotFound,
    ZipgateServer,
    ZipgateStartError,
    find_binary,
    wheel_binary_path,
)

__version__ = "0.1.0"

__all__ = [
    "Binary",
    "Counts",
    "Fault",
    "Job",
    "JournalEntry",
    "Zipgate",
    "ZipgateConnectionError",
    "ZipgateError",
    "ZipgateNotFound",
    "ZipgateServer",
    "ZipgateStartError",
    "find_binary",
    "wheel_binary_path",
]
