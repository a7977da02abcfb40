"""HTTP batches (SPEC 2, 3, 6; DESIGN "The stdout line", "Error answers"): what a POST to
/api/v1/telemetry answers and what the logshipper writes for it."""
import gzip
import json
import re
import socket
import time
import urllib.parse

import pytest

import tlm_harness as H
from tlm_harness import ACME_CC, PULSE_CC, RID_RE, TS_RE, assert_error, uniq

API = "/api/v1/telemetry"


def accepted(resp, n=None):
    """Checks a 202 answer and returns its body."""
    assert resp.status_code == 202, "expected 202, got %d: %s" % (resp.status_code, resp.text[:500])
    body = resp.json()
    assert isinstance(body.get("accepted"), int), body
    assert isinstance(body.get("rejected"), list), body
    if n is not None:
        assert body["accepted"] == n, body
    return body


def check_common(line, kind, user="agent1", tenant="pulse", cc=PULSE_CC, app="wwe_ui"):
    assert line["kind"] == kind, line
    assert line["user"] == user, line
    assert line["tenantName"] == tenant, line
    assert line["contactCenterId"] == cc, line
    assert line["appName"] == app, line
    assert TS_RE.match(line["ts"]), line
    assert TS_RE.match(line["receivedAt"]), line
    assert RID_RE.match(line["rid"]), line
    assert isinstance(line.get("properties", {}), dict), line
    if kind == "trace":
        assert isinstance(line["level"], str) and "msg" in line, line
    else:
        assert "level" not in line, "level is for traces only: %s" % line
        assert isinstance(line["name"], str), line
    if kind == "metric":
        assert isinstance(line["value"], (int, float)), line


# ---------------------------------------------------------------------------------------
# accepted batches and the lines they give

@pytest.mark.smoke
def test_batch_lines_carry_every_field(tlm):
    m = uniq("fields")
    ev_ts = 1764000000123
    batch = {
        "appName": "wwe_ui",
        "batchId": m,
        "properties": {"agentSessionId": "as-1"},
        "traces": [
            {"ts": "2026-11-24T12:00:00.5+02:00", "level": "error", "msg": m + " t0"},
            {"msg": m + " t1"},
        ],
        "events": [{"ts": ev_ts, "name": "performance_" + m}],
        "metrics": [{"name": "http_sync_req_" + m, "value": 4.1}],
    }
    t0 = H.now_ms()
    body = accepted(tlm.post(batch), 4)
    t1 = H.now_ms()
    assert body["rejected"] == [], body
    assert body.get("batchId") == m, "batchId not echoed: %s" % body
    lines = tlm.stdout_lines(m)   # 202 means written: no waiting
    assert len(lines) == 4, "expected 4 lines, got %d: %s" % (len(lines), lines)
    by = {(ln["kind"], ln.get("msg") or ln.get("name")): ln for ln in lines}

    tr0 = by[("trace", m + " t0")]
    check_common(tr0, "trace")
    assert tr0["ts"] == "2026-11-24T10:00:00.500Z", "RFC 3339 with offset not normalised: %s" % tr0["ts"]
    assert tr0["level"] == "error"
    assert tr0["properties"] == {"agentSessionId": "as-1"}, tr0

    tr1 = by[("trace", m + " t1")]
    check_common(tr1, "trace")
    assert tr1["level"] == "info", "default level: %s" % tr1
    for ln in lines:
        rcv = H.parse_rfc3339(ln["receivedAt"])
        assert t0 - 2000 <= rcv <= t1 + 2000, "receivedAt %s not the time of the request" % ln["receivedAt"]
    assert abs(H.parse_rfc3339(tr1["ts"]) - H.parse_rfc3339(tr1["receivedAt"])) <= 2000, \
        "missing ts must be the time received: %s" % tr1

    ev = by[("event", "performance_" + m)]
    check_common(ev, "event")
    assert ev["ts"] == H.rfc3339_ms(ev_ts) == "2025-11-24T16:00:00.123Z", ev

    me = by[("metric", "http_sync_req_" + m)]
    check_common(me, "metric")
    assert me["value"] == 4.1, me
    assert "msg" not in ev and "msg" not in me


def test_content_type_with_charset_is_json(tlm):
    m = uniq("charset")
    r = tlm.post({"appName": "wwe_ui", "traces": [{"msg": m}]}, content_type="application/json; charset=utf-8")
    accepted(r, 1)
    assert len(tlm.stdout_lines(m)) == 1


@pytest.mark.smoke
def test_gzip_body_accepted(tlm):
    m = uniq("gzip")
    batch = {"appName": "wwe_ui", "traces": [{"msg": m + " %d" % i} for i in range(5)]}
    accepted(tlm.post(batch, gzip=True), 5)
    assert len(tlm.stdout_lines(m)) == 5


def test_rid_format_unique_and_indexed(tlm):
    m = uniq("rid")
    batch = {"appName": "wwe_ui",
             "traces": [{"msg": "%s t%d" % (m, i)} for i in range(3)],
             "events": [{"name": "%s_e%d" % (m, i)} for i in range(2)],
             "metrics": [{"name": "%s_m%d" % (m, i), "value": i} for i in range(2)]}
    body = accepted(tlm.post(batch), 7)
    assert "batchId" not in body, "no batchId was sent, none should come back: %s" % body
    lines = tlm.stdout_lines(m)
    assert len(lines) == 7
    rids = [ln["rid"] for ln in lines]
    assert len(set(rids)) == 7, "rids not unique: %s" % rids
    for ln in lines:
        assert RID_RE.match(ln["rid"]), ln["rid"]
        label = ln.get("msg") or ln["name"]
        idx = int(re.search(r"(\d+)$", label).group(1))
        assert ln["rid"].endswith("-%s%d" % (ln["kind"][0], idx)), "rid %s of %s" % (ln["rid"], label)
    assert len({r.split("-")[0] for r in rids}) == 1, "one batch, one rid prefix: %s" % rids

    # the same content again, without batchId: new rids
    m2 = m + "x"
    batch2 = json.loads(json.dumps(batch).replace(m, m2))
    accepted(tlm.post(batch2), 7)
    assert not set(ln["rid"] for ln in tlm.stdout_lines(m2)) & set(rids)


def test_rid_stable_across_resend_of_batch_id(tlm):
    m = uniq("resend")
    batch = {"appName": "wwe_ui", "batchId": m,
             "traces": [{"msg": "%s t%d" % (m, i)} for i in range(2)],
             "events": [{"name": m + "_e0"}], "metrics": [{"name": m + "_m0", "value": 1}]}
    assert accepted(tlm.post(batch), 4).get("batchId") == m
    assert accepted(tlm.post(batch), 4).get("batchId") == m
    lines = tlm.stdout_lines(m)
    assert len(lines) == 8, "two sends of 4 records: %d lines" % len(lines)
    by = {}
    for ln in lines:
        by.setdefault(ln.get("msg") or ln["name"], set()).add(ln["rid"])
    assert len(by) == 4 and all(len(v) == 1 for v in by.values()), \
        "re-sent records must keep their rid: %s" % by
    # another batchId, same content: other rids
    accepted(tlm.post(dict(batch, batchId=m + "-other")), 4)
    by2 = {}
    for ln in tlm.stdout_lines(m):
        by2.setdefault(ln.get("msg") or ln["name"], set()).add(ln["rid"])
    assert all(len(v) == 2 for v in by2.values()), "a different batchId must give other rids: %s" % by2


def test_rid_of_a_batch_id_differs_between_users(tlm):
    # two agents' desktops may both number their batches from 1: an aggregator that drops
    # duplicate rids must not drop one agent's records as the other's
    m = uniq("ridusers")
    batch = {"appName": "wwe_ui", "batchId": "1", "traces": [{"msg": m}]}
    accepted(tlm.post(batch, token="dev-token"), 1)
    accepted(tlm.post(batch, token="dev-token-2"), 1)
    accepted(tlm.post(batch, token="dev-token-2"), 1)   # a re-send by the second agent
    lines = tlm.stdout_lines(m)
    rids = {}
    for ln in lines:
        rids.setdefault(ln["user"], set()).add(ln["rid"])
    assert len(lines) == 3 and set(rids) == {"agent1", "agent2"}, lines
    assert len(rids["agent2"]) == 1, "a re-send by the same user keeps its rid: %s" % rids
    assert not rids["agent1"] & rids["agent2"], "same batchId, two users, one rid: %s" % rids

def test_properties_merged_then_filtered_and_identity_from_gauth(tlm):
    m = uniq("props")
    batch = {
        "appName": "wwe_ui",
        "tenantName": "evil", "contactCenterId": ACME_CC, "user": "mallory",
        "properties": {"agentSessionId": "env-as", "connId": "env-conn", "notInContract": "x",
                       "tenantName": "evil", "contactCenterId": ACME_CC, "user": "mallory",
                       "browserSessionId": "env-bs"},
        "traces": [{"msg": m + " t0", "tenantName": "evil", "user": "mallory", "contactCenterId": ACME_CC,
                    "properties": {"connId": "rec-conn", "interactionId": "i-1", "foo": "bar",
                                   "POC_override": {"nested": 1}, "user": "mallory"}}],
        "events": [{"name": m + "_e0", "properties": {"agentSessionId": "rec-as", "interactionId": 7,
                                                       "POC_override": True}}],
    }
    accepted(tlm.post(batch), 2)
    lines = {ln["kind"]: ln for ln in tlm.stdout_lines(m)}
    assert set(lines) == {"trace", "event"}
    for ln in lines.values():
        check_common(ln, ln["kind"])   # user agent1, tenant pulse, cc of the token
    # envelope, overridden key by key by the record, then the allow-list; objects dropped
    assert lines["trace"]["properties"] == {"agentSessionId": "env-as", "connId": "rec-conn",
                                            "browserSessionId": "env-bs", "interactionId": "i-1"}, lines["trace"]
    assert lines["event"]["properties"] == {"agentSessionId": "rec-as", "connId": "env-conn",
                                            "browserSessionId": "env-bs", "interactionId": 7,
                                            "POC_override": True}, lines["event"]


def test_softphone_value_kept_only_when_numeric(tlm):
    m = uniq("soft")
    batch = {"appName": "softphone",
             "properties": {"ThisDN": "5001", "agentSessionId": "not-in-softphone-contract"},
             "metrics": [{"name": "sip_call_mos", "value": 4.2, "properties": {"value": 12.5, "call_id": m}},
                         {"name": "sip_call_mos", "value": 3.1, "properties": {"value": "12", "call_id": m}}]}
    accepted(tlm.post(batch), 2)
    lines = sorted(tlm.stdout_lines(m), key=lambda ln: ln["value"])
    assert len(lines) == 2
    for ln in lines:
        check_common(ln, "metric", app="softphone")
    assert lines[1]["properties"] == {"ThisDN": "5001", "call_id": m, "value": 12.5}, lines[1]
    assert lines[0]["properties"] == {"ThisDN": "5001", "call_id": m}, lines[0]


@pytest.mark.timeout(60)
def test_largest_batch_accepted_and_written(tlm_isolated):
    """A batch of TELEMETRY_MAX_RECORDS records (5000 by default) is a legal batch."""
    t = tlm_isolated
    n = min(t.cfg_int("TELEMETRY_MAX_RECORDS"), t.cfg_int("TELEMETRY_MAX_BODY_BYTES") // 64)
    m = uniq("largest")
    t0 = time.monotonic()
    r = t.post({"appName": "wwe_ui", "traces": [{"msg": "%s %d" % (m, i)} for i in range(n)]}, timeout=30)
    took = time.monotonic() - t0
    H.note("largest batch (%d records): %d in %.2fs" % (n, r.status_code, took))
    accepted(r, n)
    assert len(t.stdout_lines(m)) == n
    m2 = uniq("after-largest")
    accepted(t.post({"appName": "wwe_ui", "traces": [{"msg": m2}]}, timeout=30), 1)


# ---------------------------------------------------------------------------------------
# rejected records

def test_bad_records_rejected_good_ones_written(tlm):
    m = uniq("rej")
    max_str = tlm.cfg_int("TELEMETRY_MAX_STRING_BYTES")
    max_props = tlm.cfg_int("TELEMETRY_MAX_PROPERTIES")
    batch = {
        "appName": "wwe_ui",
        "traces": [
            {"msg": m + " good0"},                                          # 0 ok
            {"level": "info", "properties": {"connId": m}},                  # 1 missing_msg
            m + " not an object",                                            # 2 not_object
            {"msg": m + " badts", "ts": "yesterday at noon"},                # 3 invalid_ts
            {"msg": 5, "properties": {"connId": m}},                         # 4 invalid_type
            {"msg": m + " long " + "x" * (max_str + 1)},                     # 5 string_too_long
            {"msg": m + " props", "properties": {"p%d" % i: i for i in range(max_props + 1)}},  # 6
            {"msg": m + " good7", "ts": "2026-11-24T10:00:00Z"},            # 7 ok
            None,                                                            # 8 not_object
        ],
        "events": [
            {"ts": 1764000000123, "properties": {"connId": m}},              # 0 missing_name
            {"name": m + "_good"},                                           # 1 ok
        ],
        "metrics": [
            {"name": m + "_nov"},                                            # 0 missing_value
            {"name": m + "_good", "value": 2},                               # 1 ok
            {"name": m + "_strv", "value": "abc"},                           # 2 invalid_type/value
            {"value": 1, "properties": {"connId": m}},                       # 3 missing_name
        ],
    }
    body = accepted(tlm.post(batch), 4)
    got = {}
    for rj in body["rejected"]:
        assert set(rj) >= {"kind", "index", "code", "message"}, rj
        assert isinstance(rj["message"], str) and rj["message"], rj
        got[(rj["kind"], rj["index"])] = rj["code"]
    # a string value: a wrong type, though invalid_value is an acceptable reading too
    if got.get(("metrics", 2)) == "invalid_value":
        got[("metrics", 2)] = "invalid_type"
    want = {("traces", 1): "missing_msg", ("traces", 2): "not_object", ("traces", 3): "invalid_ts",
            ("traces", 4): "invalid_type", ("traces", 5): "string_too_long",
            ("traces", 6): "too_many_properties", ("traces", 8): "not_object",
            ("events", 0): "missing_name", ("metrics", 0): "missing_value",
            ("metrics", 2): "invalid_type", ("metrics", 3): "missing_name"}
    assert got == want, "rejected records:\n got  %s\n want %s" % (sorted(got.items()), sorted(want.items()))
    lines = tlm.stdout_lines(m)
    labels = sorted(ln.get("msg") or ln["name"] for ln in lines)
    assert labels == sorted([m + " good0", m + " good7", m + "_good", m + "_good"]), labels


def test_all_rejected_batch_is_202_with_zero(tlm):
    m = uniq("allrej")
    body = accepted(tlm.post({"appName": "wwe_ui", "batchId": m,
                              "traces": [{"level": "info", "properties": {"connId": m}}],
                              "events": [{"ts": 5}]}), 0)
    assert sorted((r["kind"], r["index"], r["code"]) for r in body["rejected"]) == \
        [("events", 0, "missing_name"), ("traces", 0, "missing_msg")], body
    assert tlm.stdout_lines(m) == []
    # an empty batch is fine too
    assert accepted(tlm.post({"appName": "wwe_ui"}), 0)["rejected"] == []


# ---------------------------------------------------------------------------------------
# whole-request errors

def test_invalid_json_names_line_and_column(tlm):
    body = '{\n "appName":"wwe_ui",\n "traces": [}\n}'
    err = assert_error(tlm.post(body), 400, "invalid_json")
    assert re.search(r"line\D{0,3}3\b", err["message"]), "no 'line 3' in %r" % err["message"]
    assert re.search(r"column\D{0,3}\d+", err["message"]), "no column in %r" % err["message"]


@pytest.mark.parametrize("body", [
    {"appName": "wwe_ui", "traces": {"msg": "not an array"}},
    {"appName": "wwe_ui", "events": "nope"},
    {"appName": "wwe_ui", "metrics": 3},
    {"appName": 5, "traces": []},
    {"traces": [{"msg": "no appName"}]},
    {"appName": "wwe_ui", "properties": ["not", "an", "object"]},
    [{"appName": "wwe_ui"}],
], ids=["traces-object", "events-string", "metrics-number", "appName-number", "appName-missing",
        "properties-array", "body-array"])
def test_invalid_envelope(tlm, body):
    assert_error(tlm.post(body), 400, "invalid_envelope")


def test_too_deep(tlm):
    depth = tlm.cfg_int("TELEMETRY_MAX_JSON_DEPTH") + 20
    nested = "[" * depth + "]" * depth
    body = '{"appName":"wwe_ui","traces":[{"msg":"deep","properties":{"connId":%s}}]}' % nested
    assert_error(tlm.post(body), 400, "too_deep")


def test_unknown_app_403(tlm):
    m = uniq("app")
    assert_error(tlm.post({"appName": "no_such_app", "traces": [{"msg": m}]}), 403, "unknown_app")
    assert tlm.stdout_lines(m) == []


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("POST", "/api/v1/nope"), ("GET", "/api/v2/telemetry")])
def test_not_found_404(tlm, method, path):
    assert_error(tlm.request(method, path, body=b"{}", token="dev-token",
                             headers={"Content-Type": "application/json"}), 404, "not_found")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_method_not_allowed_405(tlm, method):
    r = tlm.request(method, API, body=b'{"appName":"wwe_ui"}', token="dev-token",
                    headers={"Content-Type": "application/json"})
    assert_error(r, 405, "method_not_allowed")
    allow = r.headers.get("Allow", "")
    assert "POST" in [a.strip() for a in allow.split(",")], "Allow header: %r" % allow


def test_unsupported_media_type_415(tlm):
    m = uniq("ctype")
    assert_error(tlm.post({"appName": "wwe_ui", "traces": [{"msg": m}]}, content_type="text/plain"),
                 415, "unsupported_media_type")
    assert tlm.stdout_lines(m) == []


def test_unsupported_encoding_415(tlm):
    r = tlm.post(b'{"appName":"wwe_ui"}', headers={"Content-Encoding": "br"})
    assert_error(r, 415, "unsupported_encoding")


def test_bad_gzip_400(tlm):
    r = tlm.post(b"\x1f\x8b\x08\x00garbage, not deflate data" * 3, headers={"Content-Encoding": "gzip"})
    assert_error(r, 400, "bad_gzip")
    whole = gzip.compress(json.dumps({"appName": "wwe_ui", "traces": [{"msg": "x" * 300}]}).encode())
    r = tlm.post(whole[: len(whole) // 2], headers={"Content-Encoding": "gzip"})
    assert_error(r, 400, "bad_gzip")


# ---------------------------------------------------------------------------------------
# limits: a service with small limits (local), or the target's own limits (external)

@pytest.fixture(scope="module")
def limited(module_factory, tlm):
    t = module_factory(env={"TELEMETRY_MAX_BODY_BYTES": "4096",
                            "TELEMETRY_MAX_DECOMPRESSED_BYTES": "65536",
                            "TELEMETRY_MAX_RECORDS": "10"}, name="limited")
    return t if t is not None else tlm


def padded(size):
    """A valid batch of exactly size bytes (JSON whitespace as padding)."""
    head, tail = b'{"appName":"wwe_ui"', b"}"
    assert size >= len(head) + len(tail)
    return head + b" " * (size - len(head) - len(tail)) + tail


def test_body_too_large_413(limited):
    limit = limited.cfg_int("TELEMETRY_MAX_BODY_BYTES")
    accepted(limited.post(padded(limit)), 0)
    assert_error(limited.post(padded(limit + 1)), 413, "body_too_large")


def test_gzip_bomb_413(limited):
    limit = limited.cfg_int("TELEMETRY_MAX_DECOMPRESSED_BYTES")
    ok = gzip.compress(padded(limit - 64))
    accepted(limited.post(ok, headers={"Content-Encoding": "gzip"}), 0)
    bomb = gzip.compress(padded(limit * 4), 9)
    assert len(bomb) < limited.cfg_int("TELEMETRY_MAX_BODY_BYTES"), "bomb must pass the body limit"
    assert_error(limited.post(bomb, headers={"Content-Encoding": "gzip"}), 413, "decompressed_too_large")


def test_too_many_records_413(limited):
    n = limited.cfg_int("TELEMETRY_MAX_RECORDS")
    m = uniq("many")

    def batch(count):
        recs = [{"msg": "%s %d" % (m, i)} for i in range(count)]
        third = count // 3
        return {"appName": "wwe_ui", "traces": recs[:third],
                "events": [{"name": r["msg"]} for r in recs[third:2 * third]],
                "metrics": [{"name": r["msg"], "value": 1} for r in recs[2 * third:]]}
    assert_error(limited.post(batch(n + 1)), 413, "too_many_records")
    assert limited.stdout_lines(m) == []
    accepted(limited.post(batch(n)), n)
    assert len(limited.stdout_lines(m)) == n


def _expect_continue_request(tlm, body, length=None):
    """Sends headers with Expect: 100-continue and no body; returns (socket, what came back
    within 0.8 s). curl and .NET wait for the interim answer before the body."""
    u =  urllib.parse.urlsplit(tlm.ingest_url)
    s = socket.create_connection((u.hostname, u.port), 5)
    head = ("POST /api/v1/telemetry HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer dev-token\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
            % (u.netloc, len(body) if length is None else length))
    s.sendall(head.encode())
    s.settimeout(0.8)
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.settimeout(5)
    return s, got


def test_expect_100_continue_answered_before_the_body(tlm):
    m = uniq("expect")
    body = json.dumps({"appName": "wwe_ui", "traces": [{"msg": m + " " + "x" * 2000}]}).encode()
    s, got = _expect_continue_request(tlm, body)
    try:
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), "no interim answer before the body: %r" % got
        s.sendall(body)
        rest = got[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while b"\r\n\r\n" not in rest:
            rest += s.recv(4096)
        assert rest.startswith(b"HTTP/1.1 202"), rest[:200]
    finally:
        s.close()
    assert len(tlm.stdout_lines(m)) == 1


def test_expect_100_continue_refused_without_the_interim_answer(tlm):
    # a body over the limit is refused on its headers: no 100, the final 413 at once
    over = tlm.cfg_int("TELEMETRY_MAX_BODY_BYTES") + 1
    s, got = _expect_continue_request(tlm, b"", length=over)
    s.close()
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
