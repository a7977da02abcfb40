/* log.c - diagnostics as JSON lines on stderr, one write(2) per line so lines from
 * threads never interleave. Settings live in one static struct that log_setup resets. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "jsonl.h"

static struct {
    char component[32];
    int level[2]; /* indexed by enum log_logger */
} log_state = {"tlm", {LOG_INFO, LOG_INFO}};

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};
static const char *const log_logger_names[] = {"app", "api"};

int log_level_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcasecmp(s, "debug"))
        return LOG_DEBUG;
    if (!strcasecmp(s, "info"))
        return LOG_INFO;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return LOG_WARN;
    if (!strcasecmp(s, "error"))
        return LOG_ERROR;
    if (!strcasecmp(s, "off"))
        return LOG_OFF;
    return -1;
}

static int clamp_level(int l) { return l < LOG_DEBUG ? LOG_DEBUG : l > LOG_OFF ? LOG_OFF : l; }

void log_setup(const char *component, int app_level, int api_level)
{
    snprintf(log_state.component, sizeof(log_state.component), "%s", component ? component : "tlm");
    log_state.level[LOGGER_APP] = clamp_level(app_level);
    log_state.level[LOGGER_API] = clamp_level(api_level);
}

int log_enabled(enum log_logger logger, enum log_level level)
{
    if ((unsigned)logger > LOGGER_API || level >= LOG_OFF)
        return 0;
    return (int)level >= log_state.level[logger];
}

/* Writes the whole line; a full or closed stderr loses the line, never blocks forever. */
static void write_line(const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(STDERR_FILENO, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Builds {"ts":..,"level":..,"logger":..,"component":..,"msg":..}\n into b. */
static void build_line(struct buf *b, enum log_logger logger, enum log_level level,
                       const char *msg, size_t msglen)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    buf_append(b, "{\"ts\":\"", 7);
    jsonl_put_time(b, ms);
    buf_append(b, "\",\"level\":\"", 11);
    buf_puts(b, log_level_names[level]);
    buf_append(b, "\",\"logger\":\"", 12);
    buf_puts(b, log_logger_names[logger]);
    buf_append(b, "\",\"component\":", 14);
    jsonl_put_string(b, log_state.component, strlen(log_state.component));
    buf_append(b, ",\"msg\":", 7);
    jsonl_put_string(b, msg, msglen);
    buf_append(b, "}\n", 2);
}

void log_msg(enum log_logger logger, enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(logger, level))
        return;
    int saved_errno = errno; /* callers may log strerror(errno) and then test errno */

    char small[1024], *msg = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
        small[0] = '\0';
    } else if ((size_t)n >= sizeof(small)) {
        msg = malloc((size_t)n + 1);
        if (msg) {
            va_start(ap, fmt);
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
            va_end(ap);
        } else {
            msg = small;
            n = sizeof(small) - 1;
        }
    }

    /* The line goes into a stack array when it surely fits: the fixed keys plus the
     * component and msg at their worst (6 bytes per input byte), which also covers what
     * jsonl_put_string reserves ahead of its output. Then buf never reallocates the
     * array. Longer lines use a heap buf. */
    char line[8192];
    size_t need = 128 + 6 * strlen(log_state.component) + 6 * (size_t)n + 16;
    struct buf b;
    if (need <= sizeof(line)) {
        b.p = line;
        b.len = 0;
        b.cap = sizeof(line);
        b.oom = 0;
    } else {
        buf_init(&b);
    }
    build_line(&b, logger, level, msg, (size_t)n);
    if (!b.oom)
        write_line(b.p, b.len);
    if (b.p != line)
        buf_free(&b);
    if (msg != small)
        free(msg);
    errno = saved_errno;
}
