/* envelope.c - batch parsing, validation and line building (see envelope.h). */
#include "envelope.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/jsonl.h"
#include "../proto/tlm_proto.h"

const char *const envelope_kind_names[ENV_NKINDS] = {"traces", "events", "metrics"};
const char *const envelope_reject_codes[REJ_NCODES] = {
    "not_object", "missing_msg", "missing_name", "missing_value", "invalid_type",
    "invalid_ts", "invalid_value", "string_too_long", "too_many_properties"};

static const char *const kind_line_names[ENV_NKINDS] = {"trace", "event", "metric"};
static const uint8_t kind_proto[ENV_NKINDS] = {PROTO_KIND_TRACE, PROTO_KIND_EVENT, PROTO_KIND_METRIC};
static const char kind_rid_letter[ENV_NKINDS] = {'t', 'e', 'm'};
#define MAX_TS_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

static int is_identity_key(const char *k)
{
    return !strcmp(k, "tenantName") || !strcmp(k, "contactCenterId") || !strcmp(k, "user");
}

void envelope_init(struct envelope *e, const struct tlm_config *cfg)
{
    memset(e, 0, sizeof(*e));
    e->cfg = cfg;
    /* fixed keys: the same batchId gives the same rid in every pod, before and after restarts */
    e->rid_key0 = (struct hash_key){0x746c6d2d72696430ULL, 0x0123456789abcdefULL};
    e->rid_key1 = (struct hash_key){0x746c6d2d72696431ULL, 0xfedcba9876543210ULL};
    buf_init(&e->line);
    buf_init(&e->ident);
    buf_init(&e->scratch);
    e->received_ms = -1;
    buf_init(&e->repaired);
    hash_random_key(&e->rand_key0);
    hash_random_key(&e->rand_key1);
    size_t n = json_array_size(cfg->contracts);
    e->allow = calloc(n ? n : 1, sizeof(*e->allow));
    for (size_t i = 0; e->allow && i < n; i++) {
        const json_t *c = json_array_get(cfg->contracts, i);
        const json_t *props = json_object_get(c, "properties");
        struct contract_allow *ca = &e->allow[e->ncontracts++];
        ca->contract = c;
        ca->entries = calloc(json_array_size(props) + 1, sizeof(*ca->entries));
        size_t j;
        const json_t *entry;
        json_array_foreach(props, j, entry) {
            const char *name = json_string_value(entry);
            size_t len = strlen(name);
            int num_only = len > 5 && !strcmp(name + len - 5, "__NUM");
            if (num_only)
                len -= 5;
            char *key = ca->entries ? strndup(name, len) : NULL;
            int dup = 0;
            for (size_t d = 0; key && d < ca->n; d++)
                dup |= !strcmp(ca->entries[d].key, key);
            /* identity fields come from GAuth only; "x" and "x__NUM" both listed: keep the first */
            if (!key || len == 0 || is_identity_key(key) || dup) {
                free(key);
                continue;
            }
            ca->entries[ca->n++] = (struct allow_entry){key, num_only};
        }
        if (ca->n > e->max_allow)
            e->max_allow = ca->n;
    }
    e->vals = calloc(e->max_allow + 1, sizeof(*e->vals));
}

void envelope_free(struct envelope *e)
{
    for (size_t i = 0; i < e->ncontracts; i++) {
        for (size_t j = 0; j < e->allow[i].n; j++)
            free(e->allow[i].entries[j].key);
        free(e->allow[i].entries);
    }
    free(e->allow);
    free(e->vals);
    buf_free(&e->line);
    buf_free(&e->ident);
    buf_free(&e->scratch);
    buf_free(&e->repaired);
}

void envelope_result_init(struct envelope_result *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->rejected);
}

void envelope_result_reset(struct envelope_result *r)
{
    struct buf keep = r->rejected;
    memset(r, 0, sizeof(*r));
    r->rejected = keep;
    buf_reset(&r->rejected);
}

void envelope_result_free(struct envelope_result *r) { buf_free(&r->rejected); }

static void fail(struct envelope_result *res, int status, const char *code, const char *message)
{
    res->status = status;
    res->code = code;
    snprintf(res->message, sizeof(res->message), "%s", message);
}

int envelope_depth_ok(const char *body, size_t len, long long max)
{
    long long depth = 0;
    const char *p = body, *end = body + len;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            /* skip the string: find its closing quote, one not escaped by an odd run of '\\' */
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q)
                    return 1; /* unterminated: the parser reports it */
                const char *b = q;
                while (b > p && b[-1] == '\\')
                    b--;
                p = q + 1;
                if (((q - b) & 1) == 0)
                    break;
            }
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return 0;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 1;
}

static void reject(struct envelope_result *res, int kind, size_t index, enum envelope_reject code, const char *message)
{
    struct buf *b = &res->rejected;
    if (res->nrejected)
        buf_putc(b, ',');
    buf_puts(b, "{\"kind\":\"");
    buf_puts(b, envelope_kind_names[kind]);
    buf_puts(b, "\",\"index\":");
    buf_put_u64(b, index);
    buf_puts(b, ",\"code\":\"");
    buf_puts(b, envelope_reject_codes[code]);
    buf_puts(b, "\",\"message\":");
    jsonl_put_string(b, message, strlen(message));
    buf_putc(b, '}');
    res->nrejected++;
    res->rejected_by_code[code]++;
}

static int syslog_level(const char *s, size_t len)
{
    static const struct { const char *name; int prio; } map[] = {
        {"trace", 7}, {"debug", 7}, {"info", 6}, {"notice", 5}, {"warn", 4}, {"warning", 4},
        {"error", 3}, {"err", 3}, {"critical", 2}, {"crit", 2}, {"fatal", 2}, {"alert", 1}, {"emergency", 0}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].name) == len && strncasecmp(map[i].name, s, len) == 0)
            return map[i].prio;
    return 6;
}

/* A record being turned into a line. */
struct rec {
    int kind;
    size_t index;
    int64_t ts_ms;
    const char *level;
    size_t level_len;
    const char *text; /* msg for traces, name otherwise */
    size_t text_len;
    double value;
    json_t *props, *env_props;
    const struct contract_allow *allow;
    json_t **vals; /* allowed_value of each allow entry, filled by check_record */
};

/* The value an allow-list entry keeps (the record's, else the envelope's), or NULL. */
static json_t *allowed_value(const struct rec *r, const struct allow_entry *a)
{
    const char *key = a->key;
    int num_only = a->num_only;
    json_t *v = r->props ? json_object_get(r->props, key) : NULL;
    if (!v && r->env_props)
        v = json_object_get(r->env_props, key);
    if (!v)
        return NULL;
    if (num_only)
        return json_is_number(v) ? v : NULL;
    return (json_is_string(v) || json_is_number(v) || json_is_boolean(v) || json_is_null(v)) ? v : NULL;
}

static void put_capped(struct buf *b, const char *s, size_t len, size_t cap, int *cut)
{
    if (cap == (size_t)-1)
        jsonl_put_string(b, s, len);
    else if (jsonl_put_string_max(b, s, len, cap))
        *cut = 1;
}

/* Builds the stdout line; client strings are limited to cap escaped bytes each. */
static int build_line(struct envelope *e, const struct rec *r, const char *rid, size_t cap, int truncated)
{
    struct buf *b = &e->line;
    int cut = 0;
    buf_reset(b);
    buf_puts(b, "{\"ts\":\"");
    jsonl_put_time(b, r->ts_ms);
    buf_puts(b, "\",\"receivedAt\":\"");
    buf_puts(b, e->received);
    buf_puts(b, "\",\"kind\":\"");
    buf_puts(b, kind_line_names[r->kind]);
    buf_putc(b, '"');
    if (r->kind == ENV_TRACES) {
        buf_puts(b, ",\"level\":");
        if (r->level)
            put_capped(b, r->level, r->level_len, cap, &cut);
        else
            buf_puts(b, "\"info\"");
    }
    buf_append(b, e->ident.p, e->ident.len); /* appName, tenantName, contactCenterId, user */
    buf_puts(b, r->kind == ENV_TRACES ? ",\"msg\":" : ",\"name\":");
    put_capped(b, r->text, r->text_len, cap, &cut);
    if (r->kind == ENV_METRICS) {
        buf_puts(b, ",\"value\":");
        buf_put_double(b, r->value);
    }
    buf_puts(b, ",\"properties\":{");
    int first = 1;
    for (size_t i = 0; !e->no_props && i < r->allow->n; i++) {
        json_t *v = r->vals[i];
        if (!v)
            continue;
        if (!first)
            buf_putc(b, ',');
        first = 0;
        jsonl_put_string(b, r->allow->entries[i].key, strlen(r->allow->entries[i].key));
        buf_putc(b, ':');
        switch (json_typeof(v)) {
        case JSON_STRING:
            put_capped(b, json_string_value(v), json_string_length(v), cap, &cut);
            break;
        case JSON_INTEGER:
            buf_printf(b, "%lld", (long long)json_integer_value(v));
            break;
        case JSON_REAL:
            buf_put_double(b, json_real_value(v));
            break;
        case JSON_TRUE:
            buf_puts(b, "true");
            break;
        case JSON_FALSE:
            buf_puts(b, "false");
            break;
        default:
            buf_puts(b, "null");
            break;
        }
    }
    buf_putc(b, '}');
    if (cut || truncated)
        buf_puts(b, ",\"truncated\":true");
    buf_puts(b, ",\"rid\":\"");
    buf_puts(b, rid);
    buf_puts(b, "\"}");
    return cut;
}

static int string_ok(const json_t *v, long long max) { return (long long)json_string_length(v) <= max; }

/* Checks one record; fills r or rejects it. Returns 1 when accepted. */
static int check_record(struct envelope *e, json_t *item, int kind, size_t index, int64_t now_ms,
                        struct rec *r, struct envelope_result *res)
{
    const struct tlm_config *cfg = e->cfg;
    if (!json_is_object(item)) {
        reject(res, kind, index, REJ_NOT_OBJECT, "a record must be a JSON object");
        return 0;
    }
    r->kind = kind;
    r->index = index;
    r->ts_ms = now_ms;
    json_t *ts = json_object_get(item, "ts");
    if (ts && !json_is_null(ts)) {
        if (json_is_string(ts)) {
            if (jsonl_parse_time(json_string_value(ts), json_string_length(ts), &r->ts_ms)) {
                reject(res, kind, index, REJ_INVALID_TS, "ts must be an RFC 3339 date-time or epoch milliseconds");
                return 0;
            }
        } else if (json_is_number(ts)) {
            double v = json_number_value(ts);
            if (!(v >= 0 && v <= (double)MAX_TS_MS)) {
                reject(res, kind, index, REJ_INVALID_TS, "ts in epoch milliseconds is out of range");
                return 0;
            }
            r->ts_ms = json_is_integer(ts) ? (int64_t)json_integer_value(ts) : (int64_t)v;
        } else {
            reject(res, kind, index, REJ_INVALID_TS, "ts must be an RFC 3339 date-time or epoch milliseconds");
            return 0;
        }
    }
    if (r->ts_ms < 0 || r->ts_ms > MAX_TS_MS) {
        reject(res, kind, index, REJ_INVALID_TS, "ts is out of range");
        return 0;
    }
    const char *key = kind == ENV_TRACES ? "msg" : "name";
    json_t *text = json_object_get(item, key);
    if (!text || json_is_null(text) || (kind != ENV_TRACES && json_is_string(text) && json_string_length(text) == 0)) {
        reject(res, kind, index, kind == ENV_TRACES ? REJ_MISSING_MSG : REJ_MISSING_NAME,
               kind == ENV_TRACES ? "msg is required" : "name is required");
        return 0;
    }
    if (!json_is_string(text)) {
        reject(res, kind, index, REJ_INVALID_TYPE, kind == ENV_TRACES ? "msg must be a string" : "name must be a string");
        return 0;
    }
    if (!string_ok(text, cfg->max_string_bytes) || (kind != ENV_TRACES && json_string_length(text) > 65535)) {
        reject(res, kind, index, REJ_STRING_TOO_LONG, kind == ENV_TRACES ? "msg is longer than TELEMETRY_MAX_STRING_BYTES"
                                                                       : "name is longer than TELEMETRY_MAX_STRING_BYTES");
        return 0;
    }
    r->text = json_string_value(text);
    r->text_len = json_string_length(text);
    r->level = NULL;
    r->level_len = 0;
    if (kind == ENV_TRACES) {
        json_t *lvl = json_object_get(item, "level");
        if (lvl && !json_is_null(lvl)) {
            if (!json_is_string(lvl)) {
                reject(res, kind, index, REJ_INVALID_TYPE, "level must be a string");
                return 0;
            }
            if (json_string_length(lvl) > 64) {
                reject(res, kind, index, REJ_STRING_TOO_LONG, "level is longer than 64 bytes");
                return 0;
            }
            r->level = json_string_value(lvl);
            r->level_len = json_string_length(lvl);
        }
    }
    if (kind == ENV_METRICS) {
        json_t *v = json_object_get(item, "value");
        if (!v || json_is_null(v)) {
            reject(res, kind, index, REJ_MISSING_VALUE, "value is required");
            return 0;
        }
        if (!json_is_number(v)) {
            reject(res, kind, index, REJ_INVALID_TYPE, "value must be a number");
            return 0;
        }
        r->value = json_number_value(v);
        if (!isfinite(r->value)) {
            reject(res, kind, index, REJ_INVALID_VALUE, "value must be finite");
            return 0;
        }
    }
    json_t *props = json_object_get(item, "properties");
    if (props && !json_is_null(props) && !json_is_object(props)) {
        reject(res, kind, index, REJ_INVALID_TYPE, "properties must be an object");
        return 0;
    }
    r->props = json_is_object(props) ? props : NULL;
    size_t nprops = r->props ? json_object_size(r->props) : 0;
    if (r->env_props) {
        const char *k;
        json_t *v;
        json_object_foreach(r->env_props, k, v) {
            if (!r->props || !json_object_get(r->props, k))
                nprops++;
        }
    }
    if ((long long)nprops > cfg->max_properties) {
        reject(res, kind, index, REJ_TOO_MANY_PROPERTIES, "more properties than TELEMETRY_MAX_PROPERTIES");
        return 0;
    }
    size_t kept = 0;
    for (size_t i = 0; i < r->allow->n; i++) {
        json_t *v = r->vals[i] = allowed_value(r, &r->allow->entries[i]);
        if (!v)
            continue;
        kept++;
        if (json_is_string(v) && !string_ok(v, cfg->max_string_bytes)) {
            reject(res, kind, index, REJ_STRING_TOO_LONG, "a property is longer than TELEMETRY_MAX_STRING_BYTES");
            return 0;
        }
    }
    res->properties_dropped += nprops > kept ? nprops - kept : 0;
    return 1;
}

static void put_hex64(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
}

static void make_rid_base(struct envelope *e, const struct envelope_identity *id, const char *app, size_t app_len,
                          json_t *batch_id, char out[33])
{
    uint64_t h0, h1;
    if (batch_id) {
        struct buf *b = &e->scratch;
        buf_reset(b);
        /* the user too: two agents' clients may both count batchIds from 1 */
        buf_append(b, id->ccid, strlen(id->ccid) + 1);
        buf_append(b, id->user, strlen(id->user) + 1);
        buf_append(b, app, app_len);
        buf_putc(b, '\0');
        buf_append(b, json_string_value(batch_id), json_string_length(batch_id));
        h0 = hash_siphash(&e->rid_key0, b->p ? b->p : "", b->len);
        h1 = hash_siphash(&e->rid_key1, b->p ? b->p : "", b->len);
    } else {
        /* a keyed hash of a counter: unique and unpredictable without a syscall per batch */
        e->rid_counter++;
        h0 = hash_siphash(&e->rand_key0, &e->rid_counter, sizeof(e->rid_counter));
        h1 = hash_siphash(&e->rand_key1, &e->rid_counter, sizeof(e->rid_counter));
    }
    put_hex64(out, h0);
    put_hex64(out + 16, h1);
    out[32] = '\0';
}

/* rid = <batch rid>-<kind letter><index in its array>, written by hand: snprintf per record
 * showed in profiles of small batches */
static void make_rid(char *rid, const char *rid_base, char letter, size_t index)
{
    memcpy(rid, rid_base, 32);
    rid[32] = '-';
    rid[33] = letter;
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + index % 10);
        index /= 10;
    } while (index);
    for (size_t i = 0; i < n; i++)
        rid[34 + i] = digits[n - 1 - i];
    rid[34 + n] = '\0';
}

/* Builds the line (cutting strings when it is too long) and appends the record to out. */
static int emit(struct envelope *e, const struct rec *r, const struct envelope_identity *id, const char *app,
                size_t app_len, int64_t now_ms, const char *rid_base, struct pipeline_batch *out, struct envelope_result *res)
{
    char rid[64];
    make_rid(rid, rid_base, kind_rid_letter[r->kind], r->index);
    size_t max = (size_t)e->cfg->line_max_bytes - 1; /* room for the newline */
    int truncated = 0;
    build_line(e, r, rid, (size_t)-1, 0);
    if (e->line.len > max) {
        /* binary search the largest per-string cap that fits; short strings stay whole */
        size_t lo = 16, hi = e->line.len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            build_line(e, r, rid, mid, 1);
            if (e->line.len <= max)
                lo = mid;
            else
                hi = mid - 1;
        }
        build_line(e, r, rid, lo, 1);
        if (e->line.len > max) { /* many properties: strings of 16 bytes still do not fit */
            e->no_props = 1;
            build_line(e, r, rid, lo, 1);
            e->no_props = 0;
        }
        truncated = 1;
        res->truncated++;
    }
    if (e->line.oom)
        return -1;
    struct proto_record pr;
    memset(&pr, 0, sizeof(pr));
    pr.kind = kind_proto[r->kind];
    pr.flags = (r->kind == ENV_METRICS ? PROTO_REC_HAS_VALUE : 0) | (truncated ? PROTO_REC_TRUNCATED : 0);
    pr.level = r->kind == ENV_TRACES && r->level ? (uint8_t)syslog_level(r->level, r->level_len) : 6;
    pr.value = r->kind == ENV_METRICS ? r->value : 0;
    pr.ts_ms = r->ts_ms;
    pr.recv_ms = now_ms;
    pr.app = (struct proto_str){app, (uint32_t)app_len};
    pr.tenant = (struct proto_str){id->tenant, (uint32_t)strlen(id->tenant)};
    pr.ccid = (struct proto_str){id->ccid, (uint32_t)strlen(id->ccid)};
    if (r->kind != ENV_TRACES)
        pr.name = (struct proto_str){r->text, (uint32_t)r->text_len};
    pr.rid = (struct proto_str){rid, (uint32_t)strlen(rid)};
    pr.line = (struct proto_str){e->line.p, (uint32_t)e->line.len};
    struct proto_records_writer w = {0, 0};
    proto_records_add(&out->records, &w, &pr);
    return pipeline_batch_mark(out);
}

void envelope_process(struct envelope *e, const char *body, size_t len, const struct envelope_identity *id,
                      int64_t now_ms, struct pipeline_batch *out, struct envelope_result *res)
{
    const struct tlm_config *cfg = e->cfg;
    if (!envelope_depth_ok(body, len, cfg->max_json_depth)) {
        fail(res, 400, "too_deep", "JSON nesting is deeper than TELEMETRY_MAX_JSON_DEPTH");
        return;
    }
    /* invalid UTF-8 in a client string is replaced, not a reason to lose the batch */
    if (jsonl_utf8_repair(&e->repaired, body, len)) {
        body = e->repaired.p;
        len = e->repaired.len;
    }
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &je);
    if (!root && json_error_code(&je) == json_error_numeric_overflow)
        /* An integer past 2^63 (JavaScript writes numbers below 1e21 without an exponent):
         * read this batch's numbers as doubles rather than lose it. A real past DBL_MAX
         * (1e400) fails again and is the batch's 400. */
        root = json_loadb(body, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
    if (!root) {
        res->status = 400;
        res->code = "invalid_json";
        /* jansson quotes the body at the error ("... near '<text>'"): cut it, so no client
         * text reaches a log line (SECURITY.md: bodies are not logged; a token may be in it) */
        char *near = strstr(je.text, " near '");
        if (near)
            *near = '\0';
        snprintf(res->message, sizeof(res->message), "line %d, column %d: %s", je.line, je.column, je.text);
        return;
    }
    json_t *app = NULL, *batch_id = NULL, *env_props = NULL, *arrays[ENV_NKINDS];
    if (!json_is_object(root)) {
        fail(res, 400, "invalid_envelope", "the body must be a JSON object");
        goto done;
    }
    json_t *seq = json_object_get(root, "seq"); /* first: every answer of a stream names its batch */
    if (seq && json_is_integer(seq)) {
        res->has_seq = 1;
        res->seq = (int64_t)json_integer_value(seq);
    } else if (json_is_real(seq)) { /* read as a double by the fallback above: exact up to 2^53 */
        double v = json_real_value(seq);
        if (fabs(v) <= 9007199254740992.0 && v == trunc(v)) {
            res->has_seq = 1;
            res->seq = (int64_t)v;
        }
    }
    app = json_object_get(root, "appName");
    if (!json_is_string(app) || json_string_length(app) == 0 || json_string_length(app) > 255) {
        fail(res, 400, "invalid_envelope", "appName is required and must be a string of 1 to 255 bytes");
        goto done;
    }
    json_t *contract = config_contract(cfg, json_string_value(app), json_string_length(app));
    if (!contract) {
        fail(res, 403, "unknown_app", "no contract for this appName");
        goto done;
    }
    batch_id = json_object_get(root, "batchId");
    if (batch_id && !json_is_null(batch_id) && (!json_is_string(batch_id) || json_string_length(batch_id) > 128)) {
        fail(res, 400, "invalid_envelope", "batchId must be a string of at most 128 bytes");
        goto done;
    }
    if (json_is_null(batch_id))
        batch_id = NULL;
    env_props = json_object_get(root, "properties");
    if (env_props && !json_is_null(env_props) && !json_is_object(env_props)) {
        fail(res, 400, "invalid_envelope", "properties must be an object");
        goto done;
    }
    if (!json_is_object(env_props))
        env_props = NULL;
    size_t total = 0;
    for (int k = 0; k < ENV_NKINDS; k++) {
        arrays[k] = json_object_get(root, envelope_kind_names[k]);
        if (arrays[k] && json_is_null(arrays[k]))
            arrays[k] = NULL;
        if (arrays[k] && !json_is_array(arrays[k])) {
            fail(res, 400, "invalid_envelope", envelope_kind_names[k]);
            strncat(res->message, " must be an array", sizeof(res->message) - strlen(res->message) - 1);
            goto done;
        }
        total += arrays[k] ? json_array_size(arrays[k]) : 0;
    }
    if ((long long)total > cfg->max_records) {
        fail(res, 413, "too_many_records", "the batch holds more records than TELEMETRY_MAX_RECORDS");
        goto done;
    }
    if (batch_id) {
        struct buf *b = &e->scratch;
        buf_reset(b);
        jsonl_put_string(b, json_string_value(batch_id), json_string_length(batch_id));
        snprintf(res->batch_id, sizeof(res->batch_id), "%s", b->p ? b->p : "\"\"");
    }
    char rid_base[33];
    make_rid_base(e, id, json_string_value(app), json_string_length(app), batch_id, rid_base);
    const struct contract_allow *allow = NULL;
    for (size_t c = 0; c < e->ncontracts; c++)
        if (e->allow[c].contract == contract)
            allow = &e->allow[c];
    static const struct contract_allow none = {NULL, NULL, 0};
    if (!allow)
        allow = &none;
    /* what every line of the batch shares, written once */
    buf_reset(&e->ident);
    buf_puts(&e->ident, ",\"appName\":");
    jsonl_put_string(&e->ident, json_string_value(app), json_string_length(app));
    buf_puts(&e->ident, ",\"tenantName\":");
    jsonl_put_string(&e->ident, id->tenant, strlen(id->tenant));
    buf_puts(&e->ident, ",\"contactCenterId\":");
    jsonl_put_string(&e->ident, id->ccid, strlen(id->ccid));
    buf_puts(&e->ident, ",\"user\":");
    jsonl_put_string(&e->ident, id->user, strlen(id->user));
    if (e->received_ms != now_ms) { /* batches of the same millisecond share the text */
        buf_reset(&e->scratch);
        jsonl_put_time(&e->scratch, now_ms);
        size_t n = e->scratch.len < sizeof(e->received) - 1 ? e->scratch.len : sizeof(e->received) - 1;
        memcpy(e->received, e->scratch.p ? e->scratch.p : "", n);
        e->received[n] = '\0';
        e->received_ms = now_ms;
    }
    for (int k = 0; k < ENV_NKINDS; k++) {
        size_t i;
        json_t *item;
        if (!arrays[k])
            continue;
        json_array_foreach(arrays[k], i, item) {
            struct rec r;
            memset(&r, 0, sizeof(r));
            r.env_props = env_props;
            r.allow = allow;
            r.vals = e->vals;
            if (!check_record(e, item, k, i, now_ms, &r, res))
                continue;
            if (emit(e, &r, id, json_string_value(app), json_string_length(app), now_ms, rid_base, out, res)) {
                fail(res, 503, "pipeline_full", "out of memory");
                goto done;
            }
            res->accepted++;
            res->accepted_by_kind[k]++;
        }
    }
done:
    if (!e->arena) /* in an arena the whole tree goes at once: walking it to free is wasted */
        json_decref(root);
}

void envelope_render_result(const struct envelope_result *res, const char *prefix, struct buf *out)
{
    buf_putc(out, '{');
    if (prefix)
        buf_puts(out, prefix);
    buf_puts(out, "\"accepted\":");
    buf_put_u64(out, res->accepted);
    buf_puts(out, ",\"rejected\":[");
    if (res->rejected.len)
        buf_append(out, res->rejected.p, res->rejected.len);
    buf_putc(out, ']');
    if (res->batch_id[0]) {
        buf_puts(out, ",\"batchId\":");
        buf_puts(out, res->batch_id);
    }
    buf_putc(out, '}');
}
