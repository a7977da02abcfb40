/* tlm_proto.h - the wire protocol between tlm-ingest and tlm-logshipper.
 * One encoder/decoder for both daemons; PROTOCOL.md beside this file is the byte-level spec. */
#ifndef TLM_PROTO_H
#define TLM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

#define PROTO_VERSION 1
#define PROTO_MAGIC0 0x54 /* 'T' */
#define PROTO_MAGIC1 0x4C /* 'L' */
#define PROTO_HEADER_LEN 8
#define PROTO_MAX_PAYLOAD (8u * 1024u * 1024u) /* larger frames are a protocol error */

enum proto_type {
    PROTO_HELLO = 1,
    PROTO_RECORDS = 2,
    PROTO_ACK = 3,
    PROTO_STATS = 4,
    PROTO_PING = 5,
    PROTO_BYE = 6,
};

#define PROTO_PING_REPLY 0x01 /* flags bit of a PING frame that answers another */
#define PROTO_STATS_GAUTH_UP 0x01 /* flags bit of a STATS frame: the ingest's last GAuth check succeeded */

enum proto_kind { PROTO_KIND_TRACE = 1, PROTO_KIND_EVENT = 2, PROTO_KIND_METRIC = 3 };

#define PROTO_REC_HAS_VALUE 0x01
#define PROTO_REC_TRUNCATED 0x02

/* Routing fields of one record plus its finished stdout line (no newline).
 * Decoded strings point into the frame payload: they are not NUL-terminated. */
struct proto_str {
    const char *p;
    uint32_t len;
};

struct proto_record {
    uint8_t kind;      /* enum proto_kind */
    uint8_t flags;     /* PROTO_REC_* */
    uint8_t level;     /* syslog priority 0..7 (traces), 6 otherwise */
    double value;      /* metric sample when PROTO_REC_HAS_VALUE */
    int64_t ts_ms;     /* record time, epoch ms */
    int64_t recv_ms;   /* when the ingest received it, epoch ms */
    struct proto_str app;
    struct proto_str tenant;
    struct proto_str ccid;
    struct proto_str name; /* event or metric name; empty for traces */
    struct proto_str rid;
    struct proto_str line; /* the JSON line the logshipper writes as is */
};

struct proto_hello {
    uint16_t version;
    uint8_t role; /* 1 ingest, 2 logshipper */
    uint64_t instance_id;
    uint32_t pid;
};

struct proto_bye {
    uint16_t reason; /* 0 shutdown, 1 protocol error, 2 version mismatch */
    struct proto_str message;
};

/* A decoded frame header; the payload follows it in the caller's buffer. */
struct proto_frame {
    uint8_t type;
    uint8_t flags;
    uint32_t payload_len;
    const uint8_t *payload;
};

enum proto_status {
    PROTO_OK = 0,
    PROTO_NEED_MORE = 1,    /* not a whole frame yet: read more bytes */
    PROTO_ERR_MAGIC = -1,   /* stream is not tlm protocol */
    PROTO_ERR_TOO_BIG = -2, /* payload_len > PROTO_MAX_PAYLOAD */
    PROTO_ERR_TYPE = -3,    /* unknown frame type */
    PROTO_ERR_SHORT = -4,   /* payload ends inside a field */
    PROTO_ERR_TRAILING = -5,/* bytes left after the last field */
    PROTO_ERR_VALUE = -6,   /* a field holds a value the spec forbids */
};

const char *proto_strerror(int status);

/* Framing: find one frame at the start of data[0..len). On PROTO_OK *consumed is the
 * frame's total size. Checks magic, type and size before the caller allocates anything. */
int proto_frame_parse(const uint8_t *data, size_t len, struct proto_frame *f, size_t *consumed);

/* Encoders append a whole frame to out. */
void proto_put_hello(struct buf *out, const struct proto_hello *h);
void proto_put_ack(struct buf *out, uint64_t seq);
void proto_put_ping(struct buf *out, uint64_t nonce, int reply);
void proto_put_bye(struct buf *out, uint16_t reason, const char *message);
void proto_put_stats(struct buf *out, int64_t ts_ms, uint8_t flags, const char *text, size_t text_len);

/* A RECORDS frame is built in three steps so records can be appended as they arrive:
 * begin (writes header and seq, count 0), add each record, end (patches length and count). */
struct proto_records_writer {
    size_t start; /* offset of the frame in out */
    uint32_t count;
};
void proto_records_begin(struct buf *out, struct proto_records_writer *w, uint64_t seq);
void proto_records_add(struct buf *out, struct proto_records_writer *w, const struct proto_record *r);
void proto_records_end(struct buf *out, struct proto_records_writer *w);
/* Encoded size of one record (for frame size accounting before adding it). */
size_t proto_record_size(const struct proto_record *r);

/* Payload decoders (f from proto_frame_parse). */
int proto_get_hello(const struct proto_frame *f, struct proto_hello *h);
int proto_get_ack(const struct proto_frame *f, uint64_t *seq);
int proto_get_ping(const struct proto_frame *f, uint64_t *nonce);
int proto_get_bye(const struct proto_frame *f, struct proto_bye *b);
int proto_get_stats(const struct proto_frame *f, int64_t *ts_ms, uint8_t *flags, struct proto_str *text);

/* RECORDS: read seq and count, then iterate. */
struct proto_records_reader {
    const uint8_t *p, *end;
    uint64_t seq;
    uint32_t count, left;
};
int proto_records_open(const struct proto_frame *f, struct proto_records_reader *rd);
/* PROTO_OK with *r filled, 1 when no records are left, <0 on a malformed record. */
int proto_records_next(struct proto_records_reader *rd, struct proto_record *r);
/* Walks every record once: PROTO_OK when the whole payload is well formed. Receivers call
 * this before acting on any record of the frame, so a bad frame is rejected whole. */
int proto_records_validate(const struct proto_frame *f);

#endif
