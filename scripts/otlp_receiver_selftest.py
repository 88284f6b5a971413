"""Self-test of scripts/otlp_receiver.py (run by `scripts/otlp-receiver selftest`).

    python otlp_receiver_selftest.py URL OUTFILE VENV_PYTHON RECEIVER TMPDIR

URL/OUTFILE: a receiver started by `scripts/otlp-receiver start OUTFILE`. The test sends it
hand-built requests and checks the JSON lines; then it spawns a second, foreground receiver
the way a Rust test does (VENV_PYTHON RECEIVER OUTFILE2 PORTFILE) and checks the two are
independent.
"""

import gzip
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
ROOT = bytes.fromhex("b7ad6b7169203331")
CHILD = bytes.fromhex("00f067aa0ba902b7")
OTHER_TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
OTHER_SPAN = bytes.fromhex("53995c3f42cd8ad8")


def kv(key, **value):
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(**value))


def request(service, spans):
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[kv("service.name", string_value=service)]
                ),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="selftest"), spans=spans
                    )
                ],
            )
        ]
    )


def two_spans():
    root = trace_pb2.Span(
        trace_id=TRACE,
        span_id=ROOT,
        name="mllp receive",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_500_000_000,
        attributes=[
            kv("hl7.message_type", string_value="ADT^A01"),
            kv("hl7.segments", int_value=7),
            kv("fleet.duplicate", bool_value=False),
            kv("fleet.ratio", double_value=0.5),
        ],
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK),
    )
    child = trace_pb2.Span(
        trace_id=TRACE,
        span_id=CHILD,
        parent_span_id=ROOT,
        name="queue send",
        kind=trace_pb2.Span.SPAN_KIND_PRODUCER,
        start_time_unix_nano=1_700_000_000_100_000_000,
        end_time_unix_nano=1_700_000_000_200_000_000,
        links=[
            trace_pb2.Span.Link(
                trace_id=OTHER_TRACE,
                span_id=OTHER_SPAN,
                attributes=[kv("link.reason", string_value="batch")],
            )
        ],
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
    )
    return request("fleet-gateway", [root, child])


def post(url, body, ctype="application/x-protobuf", encoding=None):
    headers = {"Content-Type": ctype}
    if encoding:
        headers["Content-Encoding"] = encoding
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check(cond, what):
    if not cond:
        raise SystemExit(f"selftest: FAILED: {what}")


def expect_ok(status, ctype, body, what):
    check(status == 200, f"{what}: status {status}")
    check(ctype == "application/x-protobuf", f"{what}: content-type {ctype}")
    resp = trace_service_pb2.ExportTraceServiceResponse()
    resp.ParseFromString(body)
    check(not resp.HasField("partial_success"), f"{what}: partial_success set")


def main():
    url, outfile, venv_python, receiver, tmp = sys.argv[1:6]

    # 1. Two spans, plain protobuf.
    expect_ok(*post(url + "/v1/traces", two_spans().SerializeToString()), "plain POST")
    got = lines(outfile)
    check(len(got) == 2, f"expected 2 lines, got {len(got)}")
    root, child = got
    check(root == {
        "service": "fleet-gateway",
        "trace_id": TRACE.hex(),
        "span_id": ROOT.hex(),
        "parent_span_id": "",
        "name": "mllp receive",
        "kind": "SERVER",
        "attributes": {"hl7.message_type": "ADT^A01", "hl7.segments": 7,
                       "fleet.duplicate": False, "fleet.ratio": 0.5},
        "links": [],
        "start_ns": 1_700_000_000_000_000_000,
        "end_ns": 1_700_000_000_500_000_000,
        "status": "OK",
        "scope": "selftest",
    }, f"root line: {root}")
    check(child == {
        "service": "fleet-gateway",
        "trace_id": TRACE.hex(),
        "span_id": CHILD.hex(),
        "parent_span_id": ROOT.hex(),
        "name": "queue send",
        "kind": "PRODUCER",
        "attributes": {},
        "links": [{"trace_id": OTHER_TRACE.hex(), "span_id": OTHER_SPAN.hex(),
                   "attributes": {"link.reason": "batch"}}],
        "start_ns": 1_700_000_000_100_000_000,
        "end_ns": 1_700_000_000_200_000_000,
        "status": "ERROR",
        "scope": "selftest",
    }, f"child line: {child}")

    # 2. The same request gzipped: two more lines, identical.
    expect_ok(*post(url + "/v1/traces", gzip.compress(two_spans().SerializeToString()),
                    encoding="gzip"), "gzip POST")
    got = lines(outfile)
    check(len(got) == 4 and got[2:] == [root, child], "gzip request lines differ")

    # 2b. Chunked transfer encoding (a body of unknown length): two more lines.
    body = two_spans().SerializeToString()
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/traces", body=iter([body[:10], body[10:]]),
                 headers={"Content-Type": "application/x-protobuf"}, encode_chunked=True)
    resp = conn.getresponse()
    expect_ok(resp.status, resp.headers.get("Content-Type"), resp.read(), "chunked POST")
    conn.close()
    got = lines(outfile)
    check(len(got) == 6 and got[4:] == [root, child], "chunked request lines differ")

    # 3. Bad bodies answer 400 and write nothing; the receiver keeps serving.
    status, _, _ = post(url + "/v1/traces", b"\xff\xff\xff\xff not protobuf")
    check(status == 400, f"garbage body: status {status}")
    status, _, _ = post(url + "/v1/traces", b"not gzip", encoding="gzip")
    check(status == 400, f"bad gzip: status {status}")
    status, _, _ = post(url + "/v1/traces", b"{}", ctype="application/json")
    check(status == 415, f"json body: status {status}")
    check(len(lines(outfile)) == 6, "bad bodies wrote lines")

    # 4. Other signals accepted and discarded; other paths 404.
    for path in ("/v1/logs", "/v1/metrics"):
        status, ctype, _ = post(url + path, b"")
        check(status == 200 and ctype == "application/x-protobuf", f"{path}: status {status}")
    status, _, _ = post(url + "/v1/nothing", b"")
    check(status == 404, f"/v1/nothing: status {status}")
    check(len(lines(outfile)) == 6, "other signals wrote lines")

    # 5. A foreground receiver spawned the way a Rust test does: independent of the first.
    out2 = os.path.join(tmp, "run.jsonl")
    portfile = os.path.join(tmp, "run.port")
    child_proc = subprocess.Popen([venv_python, receiver, out2, portfile],
                                  stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if os.path.exists(portfile):
                break
            check(child_proc.poll() is None, "run receiver exited")
            time.sleep(0.1)
        check(os.path.exists(portfile), "run receiver wrote no port file")
        with open(portfile, encoding="utf-8") as f:
            port = int(f.read().strip())
        url2 = f"http://127.0.0.1:{port}"
        check(url2 != url, "second receiver on the same port")
        expect_ok(*post(url2 + "/v1/traces", two_spans().SerializeToString()), "run POST")
        check(lines(out2) == [root, child], "run receiver lines differ")
        check(len(lines(outfile)) == 6, "run receiver's spans reached the first receiver")
    finally:
        child_proc.kill()
        child_proc.wait()


if __name__ == "__main__":
    main()
