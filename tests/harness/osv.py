"""A vulnerability database of the suite's own, served over the OSV API.

pip-audit's OSV service posts one query per locked package to ``/v1/query``
(``{"package": {"name": ..., "ecosystem": "PyPI"}, "version": ...}``) and
reads back ``{"vulns": [<OSV record>, ...]}``, or ``{}`` when nothing affects
that version. ``OsvServer`` answers those queries from a list of OSV records
given by the test, on 127.0.0.1, so that the rendered vulnerability gate
(scripts/audit.py, pointed here with ``PIP_AUDIT_OSV_URL``) is tested
without the internet::

    with OsvServer(records) as osv:
        env["PIP_AUDIT_OSV_URL"] = osv.query_url
        ...
    osv.queries  # the (name, version) pairs that were looked up

A record affects the versions its ``affected[].versions`` lists, compared as
versions (``5.2`` is ``5.2.0``); its ``ranges`` are what pip-audit reads the
fixed versions from, as it does from osv.dev's records.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from packaging.utils import canonicalize_name
from packaging.version import Version

QUERY_PATH = "/v1/query"


def affects(record: dict[str, Any], name: str, version: str) -> bool:
    """Whether an OSV record lists this version of this PyPI package as affected."""
    return any(
        affected["package"]["ecosystem"] == "PyPI"
        and canonicalize_name(affected["package"]["name"]) == canonicalize_name(name)
        and Version(version) in {Version(listed) for listed in affected.get("versions", [])}
        for affected in record["affected"]
    )


class OsvServer:
    """The OSV query API over a fixed list of records, in a thread of the test process."""

    def __init__(self, records: list[dict[str, Any]]):
        self.records = records
        self.queries: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                if self.path != QUERY_PATH:
                    self.send_error(404, f"only {QUERY_PATH} is served")
                    return
                query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name, version = query["package"]["name"], query["version"]
                server.queries.append((name, version))
                vulns = [record for record in server.records if affects(record, name, version)]
                # Like osv.dev: an empty object when no record matches.
                body = json.dumps({"vulns": vulns} if vulns else {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass  # The test asserts on `queries`; a log per request is noise.

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.query_url = f"http://127.0.0.1:{self.httpd.server_port}{QUERY_PATH}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
