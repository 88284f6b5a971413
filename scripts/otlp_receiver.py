"""A small OTLP/HTTP (protobuf) trace receiver for the end-to-end trace tests.

    python otlp_receiver.py OUTFILE [PORTFILE] [--host HOST] [--port PORT]

Listens on HOST:PORT (default 127.0.0.1 and a free port). Once listening it writes the port
number to PORTFILE (atomically: a temp file renamed into place) and prints
`listening http://HOST:PORT` on stdout.

  POST /v1/traces    Content-Type application/x-protobuf (Content-Encoding gzip or deflate, and
                     Transfer-Encoding chunked, accepted):
                     an ExportTraceServiceRequest. Each span is appended to OUTFILE as one JSON
                     line (flushed per request); answers 200 with an empty serialized
                     ExportTraceServiceResponse.
  POST /v1/logs      accepted and discarded (200, empty ExportLogsServiceResponse)
  POST /v1/metrics   accepted and discarded (200, empty ExportMetricsServiceResponse)
  GET  /health       200 "ok" (what `scripts/otlp-receiver start` polls)
  anything else      404

A body that does not decode answers 400 and is logged to stderr (only the error, never the
body); the server keeps running.

One JSON line per span:
  {"service": "<resource service.name or empty>", "trace_id": "<32 hex>",
   "span_id": "<16 hex>", "parent_span_id": "<16 hex or empty>", "name": "...",
   "kind": "SERVER|CLIENT|PRODUCER|CONSUMER|INTERNAL|UNSPECIFIED",
   "attributes": {key: string|int|bool|float|list|object|null} (bytes as hex),
   "links": [{"trace_id": hex, "span_id": hex, "attributes": {...}}],
   "start_ns": int, "end_ns": int, "status": "UNSET|OK|ERROR",
   "scope": "<instrumentation scope name>"}
"""

import argparse
import gzip
import json
import os
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {
    trace_pb2.Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
    trace_pb2.Span.SPAN_KIND_SERVER: "SERVER",
    trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER",
}

STATUS = {
    trace_pb2.Status.STATUS_CODE_UNSET: "UNSET",
    trace_pb2.Status.STATUS_CODE_OK: "OK",
    trace_pb2.Status.STATUS_CODE_ERROR: "ERROR",
}

MAX_BODY = 64 * 1024 * 1024


def any_value(v):
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def span_lines(request):
    for rs in request.resource_spans:
        service = ""
        for kv in rs.resource.attributes:
            if kv.key == "service.name":
                service = any_value(kv.value) or ""
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield {
                    "service": service,
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": KINDS.get(span.kind, str(span.kind)),
                    "attributes": attributes(span.attributes),
                    "links": [
                        {
                            "trace_id": link.trace_id.hex(),
                            "span_id": link.span_id.hex(),
                            "attributes": attributes(link.attributes),
                        }
                        for link in span.links
                    ],
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "status": STATUS.get(span.status.code, str(span.status.code)),
                    "scope": ss.scope.name,
                }


class Sink:
    """The OUTFILE, appended to under a lock (requests are handled on several threads)."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8")

    def write(self, records):
        with self.lock:
            for rec in records:
                self.file.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.file.flush()


ROUTES = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest,
                   trace_service_pb2.ExportTraceServiceResponse),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest,
                 logs_service_pb2.ExportLogsServiceResponse),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otlp-receiver"
    sink = None  # set in main

    def log_message(self, fmt, *args):  # no access log: keep stderr for errors
        pass

    def reply(self, code, body=b"", ctype="application/x-protobuf"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fail(self, code, why):
        print(f"otlp-receiver: {self.command} {self.path}: {code}: {why}", file=sys.stderr,
              flush=True)
        self.reply(code, why.encode() + b"\n", "text/plain")

    def read_body(self):
        """The request body, by Content-Length or chunked Transfer-Encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length", "0"))
        if length < 0 or length > MAX_BODY:
            raise ValueError(f"Content-Length {length}")
        return self.rfile.read(length)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, b"ok\n", "text/plain")
        else:
            self.reply(404, b"not found\n", "text/plain")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        route = ROUTES.get(path)
        try:
            body = self.read_body()
        except ValueError as e:
            self.close_connection = True
            return self.fail(400, f"bad request framing: {e}")
        if route is None:
            return self.reply(404, b"not found\n", "text/plain")
        ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/x-protobuf":
            return self.fail(415, f"unsupported Content-Type {ctype!r}")
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("", "identity"):
                return self.fail(415, f"unsupported Content-Encoding {encoding!r}")
            request_type, response_type = route
            request = request_type()
            request.ParseFromString(body)
        except (OSError, EOFError, zlib.error, DecodeError) as e:
            return self.fail(400, f"undecodable body: {type(e).__name__}: {e}")
        if path == "/v1/traces":
            self.sink.write(list(span_lines(request)))
        self.reply(200, response_type().SerializeToString())


def main():
    ap = argparse.ArgumentParser(description="OTLP/HTTP trace receiver")
    ap.add_argument("outfile")
    ap.add_argument("portfile", nargs="?")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    Handler.sink = Sink(args.outfile)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.portfile:
        tmp = f"{args.portfile}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.portfile)
    print(f"listening http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
