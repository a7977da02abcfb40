/* test_writer.c - the stdout writer driven through a pipe: batching, short writes, a full
 * pipe (no busy loop, frames reported only once written), back-pressure, journal fields. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../../logshipper/writer.h"
#include "unit.h"

/* What the hooks saw. */
struct rec {
    void *owner[256];
    uint64_t seq[256];
    int ndone;
    int pressure_on, pressure_off;
    int observed;
    int wait_writable, wait_timer, last_timer_ms;
    int fatal;
};

static void on_done(void *owner, uint64_t seq, void *user)
{
    struct rec *r = user;
    if (r->ndone < 256) {
        r->owner[r->ndone] = owner;
        r->seq[r->ndone] = seq;
    }
    r->ndone++;
}
static void on_pressure(int over, void *user)
{
    struct rec *r = user;
    if (over)
        r->pressure_on++;
    else
        r->pressure_off++;
}
static void on_observe(const struct proto_record *pr, void *user)
{
    (void)pr;
    ((struct rec *)user)->observed++;
}
static void on_writable(void *user) { ((struct rec *)user)->wait_writable++; }
static void on_timer(int ms, void *user)
{
    struct rec *r = user;
    r->wait_timer++;
    r->last_timer_ms = ms;
}
static void on_fatal(const char *why, void *user)
{
    (void)why;
    ((struct rec *)user)->fatal++;
}

static struct writer_hooks hooks_for(struct rec *r)
{
    struct writer_hooks h = {on_done, on_pressure, on_observe, on_writable, on_timer, on_fatal, r};
    return h;
}

/* Builds a RECORDS frame of n records whose lines are `{"seq":S,"i":I,"pad":"xx.."}`
 * padded to about line_len bytes; the expected stdout text is appended to expect. */
static void make_frame(struct buf *out, uint64_t seq, int n, size_t line_len, struct buf *expect)
{
    struct proto_records_writer w;
    buf_reset(out);
    proto_records_begin(out, &w, seq);
    for (int i = 0; i < n; i++) {
        char rid[32], line[8192];
        snprintf(rid, sizeof(rid), "rid-%llu-%d", (unsigned long long)seq, i);
        int len = snprintf(line, sizeof(line), "{\"seq\":%llu,\"i\":%d,\"pad\":\"",
                           (unsigned long long)seq, i);
        while ((size_t)len + 2 < line_len && (size_t)len + 2 < sizeof(line))
            line[len++] = 'x';
        line[len++] = '"';
        line[len++] = '}';
        struct proto_record r;
        memset(&r, 0, sizeof(r));
        r.kind = (uint8_t)(1 + i % 3);
        r.level = 6;
        r.flags = (uint8_t)((r.kind == PROTO_KIND_METRIC ? PROTO_REC_HAS_VALUE : 0) |
                            (i == 1 ? PROTO_REC_TRUNCATED : 0));
        r.value = r.kind == PROTO_KIND_METRIC ? 4.5 : 0;
        r.ts_ms = 1764000000123;
        r.recv_ms = 1764000000200;
        r.app = (struct proto_str){"wwe_ui", 6};
        r.tenant = (struct proto_str){"pulse", 5};
        r.ccid = (struct proto_str){"2868802f-1763-4ecd-94f6-203400001200", 36};
        r.name = r.kind == PROTO_KIND_TRACE ? (struct proto_str){NULL, 0}
                                            : (struct proto_str){"error_x", 7};
        r.rid = (struct proto_str){rid, (uint32_t)strlen(rid)};
        r.line = (struct proto_str){line, (uint32_t)len};
        proto_records_add(out, &w, &r);
        if (expect) {
            buf_append(expect, line, (size_t)len);
            buf_putc(expect, '\n');
        }
    }
    proto_records_end(out, &w);
}

static int push_frame(struct writer *w, uint64_t seq, int n, size_t line_len, void *owner,
                      struct buf *expect)
{
    struct buf fb;
    struct proto_frame f;
    size_t used;
    buf_init(&fb);
    make_frame(&fb, seq, n, line_len, expect);
    int rc = proto_frame_parse((const uint8_t *)fb.p, fb.len, &f, &used);
    if (rc == PROTO_OK)
        rc = proto_records_validate(&f);
    if (rc == PROTO_OK)
        rc = writer_push(w, &f, owner);
    buf_free(&fb);
    return rc;
}

/* Reads everything the pipe holds now (non-blocking). */
static void drain(int fd, struct buf *got)
{
    char tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n <= 0)
            break;
        buf_append(got, tmp, (size_t)n);
    }
}

/* A console writer on a new non-blocking pipe p (pipe_size 0: the default size). */
static struct writer *pipe_writer(int p[2], int pipe_size, size_t limit, size_t chunk, size_t batch,
                                  struct rec *r)
{
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    if (pipe_size)
        fcntl(p[1], F_SETPIPE_SZ, pipe_size);
    struct writer_hooks h = hooks_for(r);
    struct writer_config cfg = {WRITER_CONSOLE, p[1], limit, chunk, batch};
    char err[256];
    return writer_new(&cfg, &h, err, sizeof(err));
}

/* The reader empties the pipe before every flush until the writer is no longer blocked
 * (at most 1000 flushes); *rounds counts the flushes. */
static enum writer_state flush_draining(struct writer *w, int fd, struct buf *got, int *rounds)
{
    enum writer_state s;
    *rounds = 0;
    do {
        drain(fd, got);
        s = writer_flush(w);
        (*rounds)++;
    } while (s == WRITER_BLOCKED && *rounds < 1000);
    drain(fd, got);
    return s;
}

static size_t pipe_pending(int fd)
{
    int n = 0;
    ioctl(fd, FIONREAD, &n);
    return (size_t)n;
}

static void test_basic(void)
{
    int p[2];
    struct rec r = {0};
    struct writer *w = pipe_writer(p, 0, 1 << 20, 0, 0, &r);
    CHECK(w != NULL);
    struct buf expect, got;
    buf_init(&expect);
    buf_init(&got);
    int owner;
    CHECK_EQ_INT(push_frame(w, 1, 3, 60, &owner, &expect), 0);
    CHECK_EQ_INT(push_frame(w, 2, 2, 80, &owner, &expect), 0);
    CHECK_EQ_INT(push_frame(w, 5, 4, 40, &owner, &expect), 0);
    CHECK_EQ_INT(r.observed, 9);
    CHECK(r.wait_writable >= 1); /* asks for POLLOUT, writes nothing yet */
    CHECK_EQ_INT(r.ndone, 0);
    CHECK_EQ_INT(writer_queued_frames(w), 3);
    CHECK_EQ_INT(writer_queued_bytes(w), expect.len);
    CHECK_EQ_INT(writer_flush(w), WRITER_IDLE);
    CHECK_EQ_INT(r.ndone, 3);
    CHECK_EQ_INT(r.seq[0], 1);
    CHECK_EQ_INT(r.seq[1], 2);
    CHECK_EQ_INT(r.seq[2], 5);
    CHECK(r.owner[2] == &owner);
    CHECK_EQ_INT(writer_stats(w)->write_calls, 1); /* one write for the three frames */
    drain(p[0], &got);
    CHECK_EQ_INT(got.len, expect.len);
    CHECK(got.len == expect.len && memcmp(got.p, expect.p, got.len) == 0);
    const struct writer_stats *st = writer_stats(w);
    CHECK_EQ_INT(st->records[0] + st->records[1] + st->records[2], 9);
    CHECK_EQ_INT(st->records[0], 4); /* i = 0, 3 of frame 1 .. by i % 3 */
    CHECK_EQ_INT(st->truncated, 3);
    CHECK_EQ_INT(st->bytes, expect.len);
    CHECK_EQ_INT(st->frames, 3);
    CHECK_EQ_INT(writer_queued_bytes(w), 0);
    CHECK(writer_stalled_seconds(w) == 0);
    writer_free(w);
    /* the writer put the fd's flags back */
    CHECK((fcntl(p[1], F_GETFL) & O_NONBLOCK) != 0); /* it was non-blocking before */
    buf_free(&expect);
    buf_free(&got);
    close(p[0]);
    close(p[1]);
}

static void test_restores_blocking_flag(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    struct writer_config cfg = {WRITER_CONSOLE, p[1], 1 << 20, 0, 0};
    char err[256];
    struct writer *w = writer_new(&cfg, NULL, err, sizeof(err));
    CHECK(w != NULL);
    CHECK((fcntl(p[1], F_GETFL) & O_NONBLOCK) != 0);
    writer_free(w);
    CHECK((fcntl(p[1], F_GETFL) & O_NONBLOCK) == 0);
    close(p[0]);
    close(p[1]);
    CHECK(writer_new(&cfg, NULL, err, sizeof(err)) == NULL); /* closed fd */
}

static void test_blocked_pipe(void)
{
    int p[2];
    struct rec r = {0};
    struct writer *w = pipe_writer(p, 4096, 1 << 20, 0, 0, &r);
    CHECK(w != NULL);
    size_t pipe_cap = (size_t)fcntl(p[1], F_GETPIPE_SZ);
    struct buf expect, got;
    buf_init(&expect);
    buf_init(&got);
    uint64_t ends[40];
    int owner;
    for (int i = 0; i < 40; i++) { /* 40 frames of 2 lines of ~500 bytes: ~40 KB */
        CHECK_EQ_INT(push_frame(w, (uint64_t)i + 1, 2, 500, &owner, &expect), 0);
        ends[i] = expect.len;
    }
    int ww = r.wait_writable;
    CHECK_EQ_INT(writer_flush(w), WRITER_BLOCKED);
    const struct writer_stats *st = writer_stats(w);
    CHECK_EQ_INT(st->eagain, 1);
    CHECK(st->write_calls <= 3); /* fill the pipe, then one EAGAIN: no spinning */
    CHECK_EQ_INT(r.wait_writable, ww + 1); /* waits for POLLOUT exactly once */
    size_t in_pipe = pipe_pending(p[0]);
    CHECK(in_pipe > 0 && in_pipe <= pipe_cap);
    CHECK_EQ_INT(st->bytes, in_pipe);
    /* exactly the frames whose last byte is in the pipe are reported */
    int expect_done = 0;
    while (expect_done < 40 && ends[expect_done] <= in_pipe)
        expect_done++;
    CHECK_EQ_INT(r.ndone, expect_done);
    CHECK(r.ndone < 40);
    /* more pushes while blocked do not ask again: POLLOUT is already armed */
    CHECK_EQ_INT(push_frame(w, 41, 1, 100, &owner, &expect), 0);
    CHECK_EQ_INT(r.wait_writable, ww + 1);
    /* a spurious flush while still full costs one write(2) and no progress */
    uint64_t calls = st->write_calls;
    CHECK_EQ_INT(writer_flush(w), WRITER_BLOCKED);
    CHECK_EQ_INT(st->write_calls, calls + 1);
    CHECK_EQ_INT(st->eagain, 2);
    CHECK_EQ_INT(pipe_pending(p[0]), in_pipe);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(writer_stalled_seconds(w) >= 0.015);
    CHECK(writer_blocked_seconds_total(w) >= 0.015);
    /* the reader drains: every flush makes progress until everything is out */
    int rounds;
    enum writer_state s = flush_draining(w, p[0], &got, &rounds);
    CHECK_EQ_INT(s, WRITER_IDLE);
    CHECK(rounds > 1);
    CHECK_EQ_INT(r.ndone, 41);
    for (int i = 0; i < 41 && i < r.ndone; i++)
        CHECK_EQ_INT(r.seq[i], i + 1);
    CHECK(got.len == expect.len && memcmp(got.p, expect.p, got.len) == 0);
    CHECK(writer_stalled_seconds(w) == 0);
    CHECK(st->blocked_seconds >= 0.015);
    /* no more than a few calls per pipe-full: bounded, no busy loop */
    CHECK(st->write_calls <= (uint64_t)rounds * 2 + 4);
    writer_free(w);
    buf_free(&expect);
    buf_free(&got);
    close(p[0]);
    close(p[1]);
}

/* writer_kick: the reader's "write what I just pushed": writes and reports at once when the
 * output has room, costs no syscall when nothing waits, and leaves a blocked output to its
 * POLLOUT (no write(2) per kick during a stall). */
static void test_kick(void)
{
    int p[2];
    struct rec r = {0};
    struct writer *w = pipe_writer(p, 4096, 1 << 20, 0, 0, &r);
    CHECK(w != NULL);
    struct buf expect, got;
    buf_init(&expect);
    buf_init(&got);
    int owner;
    const struct writer_stats *st = writer_stats(w);
    writer_kick(w); /* nothing queued: no write */
    CHECK_EQ_INT(st->write_calls, 0);
    CHECK_EQ_INT(push_frame(w, 1, 3, 100, &owner, &expect), 0);
    writer_kick(w);
    CHECK_EQ_INT(st->write_calls, 1);
    CHECK_EQ_INT(r.ndone, 1);
    CHECK_EQ_INT(r.seq[0], 1);
    drain(p[0], &got);
    CHECK(got.len == expect.len && memcmp(got.p, expect.p, got.len) == 0);
    writer_kick(w); /* all written: no write */
    CHECK_EQ_INT(st->write_calls, 1);
    /* fill the pipe: the kick that meets EAGAIN waits for POLLOUT, later kicks write nothing */
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(push_frame(w, (uint64_t)i + 2, 2, 500, &owner, &expect), 0);
    int ww = r.wait_writable;
    writer_kick(w);
    CHECK_EQ_INT(st->eagain, 1);
    CHECK_EQ_INT(r.wait_writable, ww + 1);
    uint64_t calls = st->write_calls;
    CHECK_EQ_INT(push_frame(w, 22, 1, 100, &owner, &expect), 0);
    writer_kick(w);
    writer_kick(w);
    CHECK_EQ_INT(st->write_calls, calls);
    CHECK_EQ_INT(r.wait_writable, ww + 1);
    /* POLLOUT came: the flush empties it, every frame reported once, in order */
    int rounds;
    CHECK_EQ_INT(flush_draining(w, p[0], &got, &rounds), WRITER_IDLE);
    CHECK_EQ_INT(r.ndone, 22);
    for (int i = 0; i < 22 && i < r.ndone; i++)
        CHECK_EQ_INT(r.seq[i], i + 1);
    CHECK(got.len == expect.len && memcmp(got.p, expect.p, got.len) == 0);
    writer_free(w);
    buf_free(&expect);
    buf_free(&got);
    close(p[0]);
    close(p[1]);
}

static void test_pressure(void)
{
    int p[2];
    struct rec r = {0};
    struct writer *w = pipe_writer(p, 4096, 16384, 0, 0, &r);
    CHECK(w != NULL);
    struct buf got;
    buf_init(&got);
    int owner;
    uint64_t seq = 1;
    while (!writer_over_limit(w) && seq < 100)
        CHECK_EQ_INT(push_frame(w, seq++, 4, 1000, &owner, NULL), 0);
    CHECK_EQ_INT(r.pressure_on, 1);
    CHECK(writer_queued_bytes(w) > 16384);
    CHECK_EQ_INT(push_frame(w, seq++, 4, 1000, &owner, NULL), 0); /* still accepted */
    CHECK_EQ_INT(r.pressure_on, 1);                               /* told once */
    CHECK_EQ_INT(writer_flush(w), WRITER_BLOCKED);
    CHECK_EQ_INT(r.pressure_off, 0);
    int rounds = 0;
    while (r.pressure_off == 0 && rounds++ < 100) {
        drain(p[0], &got);
        writer_flush(w);
    }
    CHECK_EQ_INT(r.pressure_off, 1);
    CHECK(writer_queued_bytes(w) <= 8192);
    CHECK(!writer_over_limit(w));
    writer_free(w);
    buf_free(&got);
    close(p[0]);
    close(p[1]);
}

static void test_forget_owner(void)
{
    int p[2];
    struct rec r = {0};
    struct writer *w = pipe_writer(p, 0, 1 << 20, 0, 0, &r);
    struct buf expect, got;
    buf_init(&expect);
    buf_init(&got);
    int a, b;
    push_frame(w, 1, 2, 50, &a, &expect);
    push_frame(w, 1, 2, 50, &b, &expect);
    push_frame(w, 2, 2, 50, &a, &expect);
    writer_forget_owner(w, &a);
    CHECK_EQ_INT(writer_flush(w), WRITER_IDLE);
    CHECK_EQ_INT(r.ndone, 1);
    CHECK(r.owner[0] == &b);
    drain(p[0], &got); /* a's lines are written all the same */
    CHECK(got.len == expect.len && memcmp(got.p, expect.p, got.len) == 0);
    CHECK_EQ_INT(writer_stats(w)->frames, 3);
    writer_free(w);
    buf_free(&expect);
    buf_free(&got);
    close(p[0]);
    close(p[1]);
}

static void test_reader_gone(void)
{
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    close(p[0]);
    struct rec r = {0};
    struct writer_hooks h = hooks_for(&r);
    struct writer_config cfg = {WRITER_CONSOLE, p[1], 1 << 20, 0, 0};
    char err[256];
    struct writer *w = writer_new(&cfg, &h, err, sizeof(err));
    int owner;
    push_frame(w, 1, 2, 50, &owner, NULL);
    signal(SIGPIPE, SIG_IGN);
    CHECK_EQ_INT(writer_flush(w), WRITER_FATAL);
    CHECK_EQ_INT(r.fatal, 1);
    CHECK_EQ_INT(r.ndone, 0); /* never acked */
    CHECK_EQ_INT(writer_stats(w)->write_errors, 1);
    uint64_t calls = writer_stats(w)->write_calls;
    CHECK_EQ_INT(writer_flush(w), WRITER_FATAL);
    CHECK_EQ_INT(writer_stats(w)->write_calls, calls);
    writer_free(w);
    close(p[1]);
}

/* A chunk limit forces short writes through the loop. */
static void test_small_chunks(void)
{
    int p[2];
    struct rec r = {0};
    struct writer *w = pipe_writer(p, 0, 1 << 20, 100, 1000, &r);
    struct buf expect, got;
    buf_init(&expect);
    buf_init(&got);
    int owner;
    push_frame(w, 1, 5, 300, &owner, &expect); /* 1505 bytes > one batch of 1000 */
    CHECK_EQ_INT(writer_flush(w), WRITER_MORE);
    CHECK_EQ_INT(writer_stats(w)->write_calls, 10);
    CHECK_EQ_INT(r.ndone, 0);
    CHECK_EQ_INT(writer_flush(w), WRITER_IDLE);
    CHECK_EQ_INT(r.ndone, 1);
    drain(p[0], &got);
    CHECK(got.len == expect.len && memcmp(got.p, expect.p, got.len) == 0);
    writer_free(w);
    buf_free(&expect);
    buf_free(&got);
    close(p[0]);
    close(p[1]);
}

static int has_field(const struct iovec *iov, int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (iov[i].iov_len == strlen(want) && !memcmp(iov[i].iov_base, want, iov[i].iov_len))
            return 1;
    return 0;
}

static int has_key(const struct iovec *iov, int n, const char *key)
{
    size_t k = strlen(key);
    for (int i = 0; i < n; i++)
        if (iov[i].iov_len > k && !memcmp(iov[i].iov_base, key, k) &&
            ((const char *)iov[i].iov_base)[k] == '=')
            return 1;
    return 0;
}

static void test_journal_fields(void)
{
    struct proto_record r;
    memset(&r, 0, sizeof(r));
    const char *line = "{\"kind\":\"metric\",\"name\":\"sip_call_mos\",\"value\":4.25}";
    r.kind = PROTO_KIND_METRIC;
    r.level = 6;
    r.flags = PROTO_REC_HAS_VALUE | PROTO_REC_TRUNCATED;
    r.value = 4.25;
    r.ts_ms = 1764000000123;
    r.app = (struct proto_str){"softphone", 9};
    r.tenant = (struct proto_str){"pulse", 5};
    r.ccid = (struct proto_str){"2868802f-1763-4ecd-94f6-203400001200", 36};
    r.name = (struct proto_str){"sip_call_mos", 12};
    r.rid = (struct proto_str){"abc-m0", 6};
    r.line = (struct proto_str){line, (uint32_t)strlen(line)};
    struct buf s;
    buf_init(&s);
    struct iovec iov[WRITER_JOURNAL_MAX_FIELDS];
    int n = writer_journal_fields(&r, &s, iov, WRITER_JOURNAL_MAX_FIELDS);
    CHECK_EQ_INT(n, 12);
    char msg[256];
    snprintf(msg, sizeof(msg), "MESSAGE=%s", line);
    CHECK(has_field(iov, n, msg));
    CHECK(n > 0 && iov[0].iov_len == strlen(msg)); /* MESSAGE first */
    CHECK(has_field(iov, n, "PRIORITY=6"));
    CHECK(has_field(iov, n, "SYSLOG_IDENTIFIER=tlm"));
    CHECK(has_field(iov, n, "TLM_KIND=metric"));
    CHECK(has_field(iov, n, "TLM_APP=softphone"));
    CHECK(has_field(iov, n, "TLM_TENANT=pulse"));
    CHECK(has_field(iov, n, "TLM_CONTACT_CENTER_ID=2868802f-1763-4ecd-94f6-203400001200"));
    CHECK(has_field(iov, n, "TLM_NAME=sip_call_mos"));
    CHECK(has_field(iov, n, "TLM_VALUE=4.25"));
    CHECK(has_field(iov, n, "TLM_RID=abc-m0"));
    CHECK(has_field(iov, n, "TLM_TS=1764000000123"));
    CHECK(has_field(iov, n, "TLM_TRUNCATED=1"));

    /* a trace: its level is the priority, no name, no value */
    r.kind = PROTO_KIND_TRACE;
    r.level = 3;
    r.flags = 0;
    r.value = 0;
    r.name = (struct proto_str){NULL, 0};
    r.tenant = (struct proto_str){NULL, 0};
    n = writer_journal_fields(&r, &s, iov, WRITER_JOURNAL_MAX_FIELDS);
    CHECK_EQ_INT(n, 9);
    CHECK(has_field(iov, n, "PRIORITY=3"));
    CHECK(has_field(iov, n, "TLM_KIND=trace"));
    CHECK(has_field(iov, n, "TLM_TENANT="));
    CHECK(!has_key(iov, n, "TLM_NAME"));
    CHECK(!has_key(iov, n, "TLM_VALUE"));
    CHECK(!has_key(iov, n, "TLM_TRUNCATED"));
    /* too few slots */
    CHECK_EQ_INT(writer_journal_fields(&r, &s, iov, 4), -1);
    buf_free(&s);
}

static void test_journal_sink(void)
{
    struct rec r = {0};
    struct writer_hooks h = hooks_for(&r);
    struct writer_config cfg = {WRITER_JOURNAL, -1, 1 << 20, 0, 0};
    char err[256] = "";
    struct writer *w = writer_new(&cfg, &h, err, sizeof(err));
#ifdef TLM_HAVE_SYSTEMD
    CHECK(w != NULL);
    if (!w)
        return;
    int owner;
    CHECK_EQ_INT(push_frame(w, 1, 3, 80, &owner, NULL), 0);
    CHECK_EQ_INT(r.wait_timer, 1); /* flush on the next pass */
    CHECK_EQ_INT(r.last_timer_ms, 0);
    CHECK_EQ_INT(writer_queued_frames(w), 1);
    enum writer_state s = writer_flush(w);
    if (access("/run/systemd/journal/socket", W_OK) == 0) {
        CHECK_EQ_INT(s, WRITER_IDLE);
        CHECK_EQ_INT(r.ndone, 1);
        CHECK_EQ_INT(writer_stats(w)->records[0] + writer_stats(w)->records[1] +
                         writer_stats(w)->records[2], 3);
    } else { /* no journald here: counted, not acked, retried later */
        CHECK_EQ_INT(s, WRITER_RETRY);
        CHECK_EQ_INT(r.ndone, 0);
        CHECK_EQ_INT(writer_stats(w)->journal_errors, 1);
        CHECK_EQ_INT(r.wait_timer, 2);
        CHECK_EQ_INT(r.last_timer_ms, 1000);
        CHECK_EQ_INT(writer_queued_frames(w), 1);
        CHECK(writer_stalled_seconds(w) >= 0);
        CHECK_EQ_INT(push_frame(w, 2, 1, 80, &owner, NULL), 0);
        CHECK_EQ_INT(r.wait_timer, 2); /* the retry timer is already due */
    }
    writer_free(w);
#else
    CHECK(w == NULL);
    CHECK(strstr(err, "libsystemd") != NULL);
    CHECK(strstr(err, "TELEMETRY_TRACES_PROVIDER") != NULL);
#endif
}

int main(void)
{
    RUN(test_basic);
    RUN(test_restores_blocking_flag);
    RUN(test_blocked_pipe);
    RUN(test_kick);
    RUN(test_pressure);
    RUN(test_forget_owner);
    RUN(test_reader_gone);
    RUN(test_small_chunks);
    RUN(test_journal_fields);
    RUN(test_journal_sink);
    UNIT_DONE("test_writer");
}
