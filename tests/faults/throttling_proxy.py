"""A fault-injecting HTTP proxy on loopback in front of kinesis-mock: throttled ``PutRecords``.

Kinesis throttles a ``PutRecords`` call entry by entry: the call answers 200, and each rejected
entry carries ``ErrorCode = ProvisionedThroughputExceededException`` in place of its sequence
number (``FailedRecordCount`` counts them). The proxy does the same to a share of the entries it
sees (a seeded choice), forwards only the others to kinesis-mock, and merges both into one answer
in request order. Every other call passes through unchanged. kinesis-mock's plain port speaks the
JSON protocol (CBOR is off in the job's AWS SDKs), so entries can be read and rewritten.

>>> entries = [{"Data": "YQ==", "PartitionKey": "a"}, {"Data": "Yg==", "PartitionKey": "b"}]
>>> merged = merge_put_records(entries, {1}, {"FailedRecordCount": 0, "Records": [
...     {"SequenceNumber": "7", "ShardId": "shardId-000000000000", "ErrorCode": None}]})
>>> merged["FailedRecordCount"], merged["Records"][0]["SequenceNumber"]
(1, '7')
>>> merged["Records"][1]["ErrorCode"]
'ProvisionedThroughputExceededException'
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

log = logging.getLogger(__name__)

PUT_RECORDS = "Kinesis_20131202.PutRecords"
THROTTLED = {
    "ErrorCode": "ProvisionedThroughputExceededException",
    "ErrorMessage": "Rate exceeded for shard in stream (injected by the test proxy).",
}
#: Headers the proxy sets itself (per hop, or written by the server it runs on).
OWN_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer",
               "upgrade", "proxy-connection", "date", "server"}


def merge_put_records(entries: list, rejected: set[int], upstream: Mapping | None) -> dict:
    """The answer to a ``PutRecords`` call of ``entries`` whose ``rejected`` indexes were
    throttled here and whose others went upstream (``upstream`` = that call's answer)."""
    forwarded = iter((upstream or {}).get("Records", []))
    records = [dict(THROTTLED) if i in rejected else next(forwarded) for i in range(len(entries))]
    answer = {k: v for k, v in (upstream or {}).items() if k != "Records"}
    answer["FailedRecordCount"] = sum(1 for r in records if r.get("ErrorCode"))
    answer["Records"] = records
    return answer


class ThrottlingProxy:
    """Proxy ``upstream`` on a free loopback port; throttle ``share`` of ``PutRecords`` entries.

    Counters (read after the run): ``put_calls``, ``entries`` seen, ``throttled`` entries.
    Use as a context manager, or :meth:`start` / :meth:`stop`.
    """

    def __init__(self, upstream: str, share: float, seed: int = 0):
        self.upstream = urlparse(upstream)
        self.share = share
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.put_calls = self.entries = self.throttled = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint to give the job instead of kinesis-mock's."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ThrottlingProxy:
        """Serve in a background thread."""
        self._thread.start()
        log.info("throttling proxy %s -> %s (share %.2f)", self.url, self.upstream.geturl(),
                 self.share)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ThrottlingProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _choose_rejected(self, count: int) -> set[int]:
        with self._lock:
            rejected = {i for i in range(count) if self._random.random() < self.share}
            self.put_calls += 1
            self.entries += count
            self.throttled += len(rejected)
        return rejected

    def _forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes):
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=60
        )
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                if name.lower() not in OWN_HEADERS:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet: the default writes to stderr
                log.debug(fmt, *args)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _reply(self, status: int, headers, body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in OWN_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self._body()
                headers = dict(self.headers.items())
                is_json = "json" in self.headers.get("Content-Type", "")
                if self.headers.get("X-Amz-Target") != PUT_RECORDS or not is_json:
                    self._reply(*proxy._forward("POST", self.path, headers, body))
                    return
                request = json.loads(body)
                entries = request["Records"]
                rejected = proxy._choose_rejected(len(entries))
                upstream = None
                status, reply_headers = 200, [("Content-Type", "application/x-amz-json-1.1")]
                kept = [e for i, e in enumerate(entries) if i not in rejected]
                if kept:
                    forwarded = json.dumps({**request, "Records": kept}).encode()
                    status, reply_headers, raw = proxy._forward("POST", self.path, headers,
                                                                forwarded)
                    if status != 200:  # a whole-call error from kinesis-mock: pass it on
                        self._reply(status, reply_headers, raw)
                        return
                    upstream = json.loads(raw)
                answer = json.dumps(merge_put_records(entries, rejected, upstream)).encode()
                self._reply(status, reply_headers, answer)

        return Handler
