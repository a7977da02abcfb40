#!/usr/bin/python3
"""make_vectors.py - writes the wire-protocol test vectors (*.bin) and their README.md.
Built from PROTOCOL.md with the struct module only, never from the C codec, so the
vectors check tlm_proto.c against the spec. Run: /usr/bin/python3 proto/vectors/make_vectors.py"""

import os
import struct

MAX_PAYLOAD = 8 * 1024 * 1024
HELLO, RECORDS, ACK, STATS, PING, BYE = 1, 2, 3, 4, 5, 6
TRACE, EVENT, METRIC = 1, 2, 3
HAS_VALUE, TRUNCATED = 0x01, 0x02

# Values shared with tests/unit/test_proto.c (which re-encodes them with the C encoders).
TS = 1795514400123  # 2026-11-24T10:00:00.123Z
RECV = TS + 77
APP, TENANT = b"wwe_ui", b"pulse"
CCID = b"2868e8c5-0f3b-4c22-9d0d-6f1c0f6c5a11"
RID = b"9f86d081884c7d659a2feaa0c55ad015"
HEAD = (b'{"ts":"2026-11-24T10:00:00.123Z","receivedAt":"2026-11-24T10:00:00.200Z",')
ROUTE = b'"appName":"wwe_ui","tenantName":"pulse","contactCenterId":"' + CCID + b'",'
TRACE_LINE = (HEAD + b'"kind":"trace","level":"info",' + ROUTE +
              b'"user":"agent1","msg":"hello","properties":{},"rid":"' + RID + b'-t0"}')
ERROR_LINE = (HEAD + b'"kind":"trace","level":"error",' + ROUTE +
              b'"user":"agent1","msg":"boom","properties":{},"truncated":true,"rid":"' +
              RID + b'-t0"}')
EVENT_NAME = b"evt_" + b"x" * 256  # 260 bytes: the str16 length uses both bytes
EVENT_LINE = HEAD + b'"kind":"event",' + ROUTE + b'"rid":"' + RID + b'-e1"}'
METRIC_LINE = (HEAD + b'"kind":"metric","name":"page_load_ms","value":-1234.5,' + ROUTE +
               b'"properties":{"pad":"' + b"p" * 300 + b'"},"rid":"' + RID + b'-m2"}')
STATS_TEXT = (b"# TYPE tlm_ingest_records_total counter\n"
              b"tlm_ingest_records_total 3\n")


def frame(ftype, payload, flags=0, length=None, magic=b"TL"):
    if length is None:
        length = len(payload)
    return magic + struct.pack(">BBI", ftype, flags, length) + payload


def str8(b):
    return struct.pack(">B", len(b)) + b


def str16(b):
    return struct.pack(">H", len(b)) + b


def str32(b):
    return struct.pack(">I", len(b)) + b


def hello(version=1, role=1, reserved=0, instance_id=0x0102030405060708, pid=4242):
    return struct.pack(">HBBQI", version, role, reserved, instance_id, pid)


def record(kind=TRACE, flags=0, level=6, reserved=0, value=0.0, ts=TS, recv=RECV,
           app=APP, tenant=TENANT, ccid=CCID, name=b"", rid=RID + b"-t0", line=TRACE_LINE,
           value_bits=None, line_len=None):
    vbits = struct.pack(">d", value) if value_bits is None else struct.pack(">Q", value_bits)
    tail = str32(line) if line_len is None else struct.pack(">I", line_len) + line
    return (struct.pack(">BBBB", kind, flags, level, reserved) + vbits +
            struct.pack(">qq", ts, recv) + str8(app) + str8(tenant) + str8(ccid) +
            str16(name) + str8(rid) + tail)


def records(seq, recs, count=None, extra=b""):
    n = len(recs) if count is None else count
    return struct.pack(">QI", seq, n) + b"".join(recs) + extra


THREE = [
    record(kind=TRACE, flags=TRUNCATED, level=3, line=ERROR_LINE),
    record(kind=EVENT, name=EVENT_NAME, rid=RID + b"-e1", line=EVENT_LINE),
    record(kind=METRIC, flags=HAS_VALUE, value=-1234.5, name=b"page_load_ms",
           rid=RID + b"-m2", line=METRIC_LINE),
]
ONE = records(1, [record()])
PING_NONCE = 0xDEADBEEFCAFEF00D

# (file, expected status, what it shows). The expected status is the first one that is
# not PROTO_OK when the file is cut into frames with proto_frame_parse and each frame is
# decoded by the decoder of its type (RECORDS: proto_records_validate); PROTO_OK when all
# frames decode and the file ends on a frame boundary; PROTO_NEED_MORE when it ends inside one.
VECTORS = [
    # valid
    ("hello.bin", "PROTO_OK", frame(HELLO, hello()),
     "HELLO v1, role 1 (ingest), instance 0x0102030405060708, pid 4242"),
    ("hello_logshipper.bin", "PROTO_OK",
     frame(HELLO, hello(role=2, instance_id=0xFFFFFFFFFFFFFFFE, pid=1)),
     "HELLO v1, role 2 (logshipper), instance 0xfffffffffffffffe, pid 1"),
    ("hello_v2.bin", "PROTO_OK", frame(HELLO, hello(version=2)),
     "HELLO version 2: decodes; the receiver then answers BYE reason 2"),
    ("records_one_trace.bin", "PROTO_OK", frame(RECORDS, ONE),
     "RECORDS seq 1, one trace (level 6, no value)"),
    ("records_three_kinds.bin", "PROTO_OK", frame(RECORDS, records(42, THREE)),
     "RECORDS seq 42: truncated trace level 3, event with a 260-byte name, "
     "metric value -1234.5 with a %d-byte line" % len(METRIC_LINE)),
    ("ack.bin", "PROTO_OK", frame(ACK, struct.pack(">Q", 0x0000000100000002)),
     "ACK seq 4294967298"),
    ("ping.bin", "PROTO_OK", frame(PING, struct.pack(">Q", PING_NONCE)),
     "PING nonce 0xdeadbeefcafef00d"),
    ("ping_reply.bin", "PROTO_OK", frame(PING, struct.pack(">Q", PING_NONCE), flags=1),
     "PING reply (flags 1), same nonce"),
    ("bye.bin", "PROTO_OK", frame(BYE, struct.pack(">H", 0) + str16(b"shutdown")),
     "BYE reason 0, message \"shutdown\""),
    ("bye_protocol_error.bin", "PROTO_OK",
     frame(BYE, struct.pack(">H", 1) + str16(b"field holds a forbidden value")),
     "BYE reason 1 with the proto_strerror text of PROTO_ERR_VALUE"),
    ("stats.bin", "PROTO_OK", frame(STATS, struct.pack(">q", TS) + str32(STATS_TEXT)),
     "STATS at TS with two lines of Prometheus text"),
    ("stats_gauth_up.bin", "PROTO_OK", frame(STATS, struct.pack(">q", TS) + str32(STATS_TEXT), flags=1),
     "the same STATS with flags 1: the ingest's last GAuth check succeeded"),
    ("stream.bin", "PROTO_OK",
     frame(HELLO, hello()) + frame(RECORDS, ONE) + frame(PING, struct.pack(">Q", 7)) +
     frame(ACK, struct.pack(">Q", 1)),
     "four frames back to back: HELLO, RECORDS, PING, ACK"),
    # framing errors
    ("bad_magic.bin", "PROTO_ERR_MAGIC", frame(ACK, struct.pack(">Q", 1), magic=b"TX"),
     "second magic byte wrong"),
    ("not_tlm.bin", "PROTO_ERR_MAGIC", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
     "an HTTP request sent to the socket"),
    ("too_big.bin", "PROTO_ERR_TOO_BIG", frame(RECORDS, b"", length=MAX_PAYLOAD + 1),
     "header alone announcing 8 MiB + 1: rejected before any payload"),
    ("unknown_type.bin", "PROTO_ERR_TYPE", frame(7, struct.pack(">Q", 1)), "type 7"),
    ("type_zero.bin", "PROTO_ERR_TYPE", frame(0, struct.pack(">Q", 1)), "type 0"),
    ("incomplete.bin", "PROTO_NEED_MORE", frame(ACK, struct.pack(">Q", 1))[:12],
     "ACK cut after 4 of its 8 payload bytes"),
    ("stream_then_garbage.bin", "PROTO_ERR_MAGIC",
     frame(PING, struct.pack(">Q", 7)) + b"\x00" * 8, "a valid PING then zero bytes"),
    # HELLO
    ("hello_short.bin", "PROTO_ERR_SHORT", frame(HELLO, hello()[:15]), "15-byte payload"),
    ("hello_trailing.bin", "PROTO_ERR_TRAILING", frame(HELLO, hello() + b"\x00"),
     "17-byte payload"),
    ("hello_bad_role.bin", "PROTO_ERR_VALUE", frame(HELLO, hello(role=3)), "role 3"),
    ("hello_reserved.bin", "PROTO_ERR_VALUE", frame(HELLO, hello(reserved=1)),
     "reserved byte 1"),
    ("hello_flags.bin", "PROTO_ERR_VALUE", frame(HELLO, hello(), flags=1), "frame flags 1"),
    # ACK, PING
    ("ack_seq_zero.bin", "PROTO_ERR_VALUE", frame(ACK, struct.pack(">Q", 0)), "seq 0"),
    ("ack_short.bin", "PROTO_ERR_SHORT", frame(ACK, b"\x00" * 7), "7-byte payload"),
    ("ack_trailing.bin", "PROTO_ERR_TRAILING", frame(ACK, struct.pack(">QB", 1, 0)),
     "9-byte payload"),
    ("ping_bad_flags.bin", "PROTO_ERR_VALUE", frame(PING, struct.pack(">Q", 1), flags=2),
     "flags 2"),
    ("ping_trailing.bin", "PROTO_ERR_TRAILING", frame(PING, struct.pack(">QB", 1, 0)),
     "9-byte payload"),
    # BYE
    ("bye_bad_reason.bin", "PROTO_ERR_VALUE", frame(BYE, struct.pack(">H", 3) + str16(b"x")),
     "reason 3"),
    ("bye_short.bin", "PROTO_ERR_SHORT",
     frame(BYE, struct.pack(">HH", 0, 10) + b"short"), "message length 10, 5 bytes follow"),
    ("bye_trailing.bin", "PROTO_ERR_TRAILING",
     frame(BYE, struct.pack(">H", 0) + str16(b"bye") + b"!"), "one byte after the message"),
    ("bye_nul.bin", "PROTO_ERR_VALUE", frame(BYE, struct.pack(">H", 0) + str16(b"a\x00b")),
     "NUL byte inside the message"),
    # STATS
    ("stats_short.bin", "PROTO_ERR_SHORT",
     frame(STATS, struct.pack(">qI", TS, len(STATS_TEXT) + 1) + STATS_TEXT),
     "text length one more than the bytes present"),
    ("stats_trailing.bin", "PROTO_ERR_TRAILING",
     frame(STATS, struct.pack(">q", TS) + str32(STATS_TEXT) + b"\n"),
     "one byte after the text"),
    ("stats_no_text.bin", "PROTO_ERR_SHORT", frame(STATS, struct.pack(">q", TS)),
     "ts only, the text length is missing"),
    ("stats_bad_flags.bin", "PROTO_ERR_VALUE", frame(STATS, struct.pack(">q", TS) + str32(STATS_TEXT), flags=2),
     "flags 2"),
    # RECORDS
    ("records_short.bin", "PROTO_ERR_SHORT", frame(RECORDS, ONE[:-10]),
     "records_one_trace with the last 10 bytes of the line cut (payload_len matches)"),
    ("records_trailing.bin", "PROTO_ERR_TRAILING", frame(RECORDS, ONE + b"\x00"),
     "one byte after the last record"),
    ("records_head_short.bin", "PROTO_ERR_SHORT", frame(RECORDS, ONE[:11]),
     "payload ends inside the count"),
    ("records_count_high.bin", "PROTO_ERR_SHORT", frame(RECORDS, records(1, [record()], count=2)),
     "count 2, one record present"),
    ("records_count_low.bin", "PROTO_ERR_TRAILING",
     frame(RECORDS, records(1, [record(), record()], count=1)),
     "count 1, two records present"),
    ("records_count_zero.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(1, [])),
     "count 0"),
    ("records_seq_zero.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(0, [record()])),
     "seq 0"),
    ("records_frame_flags.bin", "PROTO_ERR_VALUE", frame(RECORDS, ONE, flags=0x80),
     "frame flags 0x80"),
    ("records_bad_kind.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(1, [record(kind=4)])),
     "kind 4"),
    ("records_kind_zero.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(1, [record(kind=0)])),
     "kind 0"),
    ("records_bad_flags.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(1, [record(flags=4)])),
     "record flags 4 (undefined bit)"),
    ("records_bad_level.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(1, [record(level=8)])),
     "level 8"),
    ("records_reserved.bin", "PROTO_ERR_VALUE",
     frame(RECORDS, records(1, [record(reserved=1)])), "reserved byte 1"),
    ("records_empty_line.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(1, [record(line=b"")])),
     "empty line"),
    ("records_empty_rid.bin", "PROTO_ERR_VALUE", frame(RECORDS, records(1, [record(rid=b"")])),
     "empty rid"),
    ("records_newline_in_line.bin", "PROTO_ERR_VALUE",
     frame(RECORDS, records(1, [record(line=b'{"a":1}\n{"forged":true}')])),
     "line containing a newline (0x0a)"),
    ("records_cr_in_line.bin", "PROTO_ERR_VALUE",
     frame(RECORDS, records(1, [record(line=b'{"a":1}\r')])), "line containing 0x0d"),
    ("records_value_without_flag.bin", "PROTO_ERR_VALUE",
     frame(RECORDS, records(1, [record(value=1.0)])), "value 1.0 but HAS_VALUE clear"),
    ("records_nan_value.bin", "PROTO_ERR_VALUE",
     frame(RECORDS, records(1, [record(kind=METRIC, flags=HAS_VALUE, name=b"m",
                                       value_bits=0x7FF8000000000000)])), "value NaN"),
    ("records_inf_value.bin", "PROTO_ERR_VALUE",
     frame(RECORDS, records(1, [record(kind=METRIC, flags=HAS_VALUE, name=b"m",
                                       value=float("inf"))])), "value +Inf"),
    ("records_line_overflow.bin", "PROTO_ERR_SHORT",
     frame(RECORDS, records(1, [record(line_len=len(TRACE_LINE) + 1)])),
     "line length one more than the bytes left"),
    ("records_second_bad.bin", "PROTO_ERR_VALUE",
     frame(RECORDS, records(5, [record(), record(level=9)])),
     "first record fine, second has level 9: the whole frame is rejected"),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    names = set()
    rows = []
    for name, expected, data, what in VECTORS:
        assert name not in names, name
        names.add(name)
        with open(os.path.join(here, name), "wb") as f:
            f.write(data)
        rows.append("| `%s` | %s | %d | %s |" % (name, expected, len(data), what))
    with open(os.path.join(here, "README.md"), "w") as f:
        f.write(README_HEAD)
        f.write("\n".join(rows) + "\n")


README_HEAD = """\
# Protocol test vectors

Generated by `make_vectors.py` (`/usr/bin/python3 proto/vectors/make_vectors.py`), which
builds each file from `../PROTOCOL.md` with Python's `struct` module and never runs the C
codec; do not edit the `.bin` files or this README by hand. `tests/unit/test_proto.c` decodes
every file listed below and checks the status, checks the fields of the valid ones, and
re-encodes those with the C encoders to compare byte for byte. The valid files also seed
the fuzzer (`../fuzz_corpus/`).

Expected status: cut the file into frames with `proto_frame_parse`, decode each frame with
the decoder of its type (`proto_get_hello`, `proto_records_validate`, `proto_get_ack`,
`proto_get_stats`, `proto_get_ping`, `proto_get_bye`). The result is the first status that
is not `PROTO_OK`; `PROTO_OK` when every frame decodes and the file ends on a frame
boundary; `PROTO_NEED_MORE` when it ends inside a frame.

Shared values: `TS` = 1795514400123 (2026-11-24T10:00:00.123Z), recv_ms = TS + 77, app
`wwe_ui`, tenant `pulse`, ccid `2868e8c5-0f3b-4c22-9d0d-6f1c0f6c5a11`, rid
`9f86d081884c7d659a2feaa0c55ad015-t0`; invalid RECORDS files are `records_one_trace.bin`
with the one change named.

| file | expected | bytes | what |
|------|----------|-------|------|
"""

if __name__ == "__main__":
    main()
