/* test_log.c - stderr JSON lines: captured through a pipe, parsed with jansson; keys,
 * escaping, level filters, long messages, errno kept. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../common/jsonl.h"
#include "../../common/log.h"
#include "unit.h"

/* Output of fn() on stderr (at most cap-1 bytes, NUL-terminated). */
static size_t capture(void (*fn)(void), char *out, size_t cap)
{
    int p[2];
    if (pipe(p))
        return 0;
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(p[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    close(p[0]);
    out[len] = '\0';
    return len;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void log_default(void) { log_app(LOG_INFO, "hello %d", 42); }
static void log_debug_default(void) { log_app(LOG_DEBUG, "hidden"); }

/* Must run first: the settings before any log_setup. */
static void test_defaults(void)
{
    char out[4096];
    capture(log_default, out, sizeof(out));
    CHECK_EQ_INT(count_lines(out), 1);
    json_error_t err;
    json_t *o = json_loads(out, 0, &err);
    CHECK(o != NULL);
    CHECK_EQ_STR(str(o, "component"), "tlm");
    CHECK_EQ_STR(str(o, "level"), "info");
    CHECK_EQ_STR(str(o, "logger"), "app");
    CHECK_EQ_STR(str(o, "msg"), "hello 42");
    CHECK_EQ_INT(json_object_size(o), 5);
    /* ts: RFC 3339 with ms and Z, within a few seconds of now */
    const char *ts = str(o, "ts");
    int64_t ms = 0;
    CHECK(ts && strlen(ts) == 24 && ts[23] == 'Z' && ts[19] == '.');
    CHECK_EQ_INT(ts ? jsonl_parse_time(ts, strlen(ts), &ms) : -1, 0);
    CHECK(llabs((long long)(ms - (int64_t)time(NULL) * 1000)) < 5000);
    CHECK_EQ_INT(strncmp(out, "{\"ts\":", 6), 0); /* key order: ts first */
    json_decref(o);
    capture(log_debug_default, out, sizeof(out));
    CHECK_EQ_STR(out, "");
    CHECK(log_enabled(LOGGER_API, LOG_INFO));
    CHECK(!log_enabled(LOGGER_API, LOG_DEBUG));
}

static void log_levels(void)
{
    log_app(LOG_DEBUG, "app debug");
    log_app(LOG_INFO, "app info");
    log_app(LOG_WARN, "app warn");
    log_app(LOG_ERROR, "app error");
    log_api(LOG_DEBUG, "api debug");
    log_api(LOG_INFO, "api info");
    log_api(LOG_WARN, "api warn");
    log_api(LOG_ERROR, "api error");
    log_msg(LOGGER_APP, LOG_OFF, "never");
}

static void test_levels(void)
{
    log_setup("ingest", LOG_DEBUG, LOG_WARN);
    char out[8192];
    capture(log_levels, out, sizeof(out));
    CHECK_EQ_INT(count_lines(out), 6);
    static const char *const want[][3] = {
        {"debug", "app", "app debug"}, {"info", "app", "app info"}, {"warn", "app", "app warn"},
        {"error", "app", "app error"}, {"warn", "api", "api warn"}, {"error", "api", "api error"}};
    char *line = out;
    for (int i = 0; i < 6 && line && *line; i++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        json_t *o = json_loads(line, 0, NULL);
        CHECK(o != NULL);
        CHECK_EQ_STR(str(o, "level"), want[i][0]);
        CHECK_EQ_STR(str(o, "logger"), want[i][1]);
        CHECK_EQ_STR(str(o, "msg"), want[i][2]);
        CHECK_EQ_STR(str(o, "component"), "ingest");
        json_decref(o);
        line = nl + 1;
    }
    log_setup("logshipper", LOG_OFF, LOG_ERROR);
    capture(log_levels, out, sizeof(out));
    CHECK_EQ_INT(count_lines(out), 1);
    CHECK(strstr(out, "\"msg\":\"api error\"") != NULL);
    CHECK(strstr(out, "\"component\":\"logshipper\"") != NULL);
    CHECK(!log_enabled(LOGGER_APP, LOG_ERROR));
    CHECK(log_enabled(LOGGER_API, LOG_ERROR));
    CHECK(!log_enabled(LOGGER_API, LOG_WARN));
}

static void log_nasty(void)
{
    log_app(LOG_WARN, "q\"b\\n\nr\rt\tz\x01 del\x7f bad\xff\xfe c1\xc2\x85 ls\xe2\x80\xa8 %s", "end");
}

static void test_escaping(void)
{
    log_setup("ingest", LOG_INFO, LOG_INFO);
    char out[4096];
    capture(log_nasty, out, sizeof(out));
    CHECK_EQ_INT(count_lines(out), 1);
    json_t *o = json_loads(out, 0, NULL);
    CHECK(o != NULL);
    CHECK_EQ_STR(str(o, "msg"), "q\"b\\n\nr\rt\tz\x01 del\x7f bad\xef\xbf\xbd\xef\xbf\xbd c1\xc2\x85 "
                                "ls\xe2\x80\xa8 end");
    json_decref(o);
}

static void log_long(void)
{
    char *big = malloc(20001);
    memset(big, 'x', 20000);
    big[20000] = '\0';
    big[100] = '\n';
    log_app(LOG_ERROR, "%s|%s", big, "tail");
    free(big);
}

static void log_mid(void)
{
    char mid[3000]; /* fits the message buffer on the stack, but not the line once escaped */
    memset(mid, '\x01', sizeof(mid) - 1);
    mid[sizeof(mid) - 1] = '\0';
    log_app(LOG_INFO, "%s", mid);
}

/* Short once escaped, but a leading escape makes the writer reserve ahead for the rest. */
static void log_reserve_ahead(void)
{
    char m[3000];
    memset(m, 'a', sizeof(m) - 1);
    m[0] = '\n';
    m[sizeof(m) - 1] = '\0';
    log_app(LOG_INFO, "%s", m);
}

static void test_long(void)
{
    static char out[200000];
    capture(log_long, out, sizeof(out));
    CHECK_EQ_INT(count_lines(out), 1);
    json_t *o = json_loads(out, 0, NULL);
    CHECK(o != NULL);
    const char *m = str(o, "msg");
    CHECK(m && strlen(m) == 20005 && m[100] == '\n' && !strcmp(m + 20000, "|tail"));
    json_decref(o);
    capture(log_mid, out, sizeof(out));
    o = json_loads(out, 0, NULL);
    CHECK(o != NULL);
    m = str(o, "msg");
    CHECK(m && strlen(m) == 2999 && m[2998] == '\x01');
    json_decref(o);
    capture(log_reserve_ahead, out, sizeof(out));
    o = json_loads(out, 0, NULL);
    m = str(o, "msg");
    CHECK(m && strlen(m) == 2999 && m[0] == '\n' && m[2998] == 'a');
    json_decref(o);
}

static void log_errno(void)
{
    errno = ENOENT;
    log_app(LOG_INFO, "errno %d", errno);
    CHECK_EQ_INT(errno, ENOENT);
}

static void test_errno_kept(void)
{
    char out[1024];
    /* stderr closed for writing (a pipe with no reader would raise SIGPIPE; use /dev/full) */
    capture(log_errno, out, sizeof(out));
    CHECK(strstr(out, "errno 2") != NULL);
    int full = open("/dev/full", O_WRONLY);
    if (full >= 0) {
        int saved = dup(STDERR_FILENO);
        dup2(full, STDERR_FILENO);
        errno = EAGAIN;
        log_app(LOG_ERROR, "lost");
        int e = errno;
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(full);
        CHECK_EQ_INT(e, EAGAIN);
    }
}

static void test_parse(void)
{
    CHECK_EQ_INT(log_level_parse("debug"), LOG_DEBUG);
    CHECK_EQ_INT(log_level_parse("INFO"), LOG_INFO);
    CHECK_EQ_INT(log_level_parse("Warn"), LOG_WARN);
    CHECK_EQ_INT(log_level_parse("warning"), LOG_WARN);
    CHECK_EQ_INT(log_level_parse("ERROR"), LOG_ERROR);
    CHECK_EQ_INT(log_level_parse("off"), LOG_OFF);
    CHECK_EQ_INT(log_level_parse(""), -1);
    CHECK_EQ_INT(log_level_parse("trace"), -1);
    CHECK_EQ_INT(log_level_parse("info "), -1);
    CHECK_EQ_INT(log_level_parse(NULL), -1);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_levels);
    RUN(test_escaping);
    RUN(test_long);
    RUN(test_errno_kept);
    RUN(test_parse);
    UNIT_DONE("log");
}
