"""The store owner's query service: while a process holds the embedded chDB store, others query
through it over HTTP.

The owner listens on 127.0.0.1 (port ``FAIRUSE_WAREHOUSE_QUERY_PORT``, 0 = any free port) and
advertises itself in ``<store>.owner.json`` next to the data directory. Protocol: ``POST /query``
with JSON ``{"sql": ..., "params": {...}}``; answer ``{"columns": [...], "rows": [[...]]}`` or
``{"error": ...}``. Every query runs with ``readonly=1``, so the engine itself refuses writes and
DDL, and only SELECT-like statements are accepted at all.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fairuse.errors import WarehouseError
from fairuse.warehouse.result import QueryResult, run_query

log = logging.getLogger(__name__)

_READ_ONLY_START = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)
MAX_REQUEST_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    """What the owner file advertises."""

    pid: int
    host: str
    port: int
    store: str


def owner_file(store: Path) -> Path:
    """Where the owner of ``store`` advertises itself."""
    return store.parent / f"{store.name}.owner.json"


def read_owner(store: Path) -> OwnerInfo | None:
    """The advertised owner of ``store``, or None when no (readable) owner file exists."""
    try:
        data = json.loads(owner_file(store).read_text(encoding="utf-8"))
        return OwnerInfo(int(data["pid"]), str(data["host"]), int(data["port"]), str(data["store"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_read_only(sql: str) -> None:
    """Raise WarehouseError unless ``sql`` is one read-only statement."""
    if not _READ_ONLY_START.match(sql) or ";" in sql.strip().rstrip(";"):
        raise WarehouseError("only one read-only statement (SELECT, WITH, SHOW, ...) is allowed")


class QueryOwner:
    """Serve read-only queries on ``client`` for other processes until :meth:`close`."""

    def __init__(self, client: Any, store: Path, port: int = 0) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.store = store
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != "/query" or length > MAX_REQUEST_BYTES:
                    self._reply(404, {"error": "POST /query with a JSON body up to 1 MiB"})
                    return
                try:
                    body = json.loads(self.rfile.read(length))
                    result = owner.execute(str(body["sql"]), dict(body.get("params") or {}))
                except (ValueError, KeyError, TypeError, WarehouseError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                self._reply(200, {"columns": result.columns, "rows": result.rows})

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("query service: " + format, *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def execute(self, sql: str, params: dict[str, Any]) -> QueryResult:
        """Run one read-only query (``readonly=1``) for a caller."""
        check_read_only(sql)
        with self._lock:
            return run_query(self._client, sql, params, settings={"readonly": 1})

    def start(self) -> QueryOwner:
        """Start serving and write the owner file."""
        self._thread.start()
        info = OwnerInfo(os.getpid(), "127.0.0.1", self.port, str(self.store))
        path = owner_file(self.store)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info)), encoding="utf-8")
        tmp.replace(path)
        log.info("serving warehouse queries on 127.0.0.1:%d (advertised in %s)", self.port, path)
        return self

    def close(self) -> None:
        """Stop serving and remove the owner file (if it is still ours)."""
        owner = read_owner(self.store)
        if owner and owner.pid == os.getpid():
            owner_file(self.store).unlink(missing_ok=True)
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


def query_owner(owner: OwnerInfo, sql: str, params: dict[str, Any], timeout_s: float = 60):
    """Send one query to ``owner``; raise WarehouseError if it fails or does not answer."""
    body = json.dumps({"sql": sql, "params": params}, default=str).encode()
    conn = http.client.HTTPConnection(owner.host, owner.port, timeout=timeout_s)
    try:
        conn.request("POST", "/query", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise WarehouseError(
            f"the owner of {owner.store} (pid {owner.pid}) did not answer on "
            f"{owner.host}:{owner.port}: {exc}"
        ) from exc
    finally:
        conn.close()
    if response.status != 200:
        raise WarehouseError(f"query refused by the store owner: {payload.get('error')}")
    return QueryResult(list(payload["columns"]), [list(row) for row in payload["rows"]])
