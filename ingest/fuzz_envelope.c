/* fuzz_envelope.c - libFuzzer target of the batch validator: any body must give either an
 * error answer or records whose stdout lines are each one valid JSON object on one line. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/tlm_proto.h"
#include "envelope.h"

static const char *fuzz_env(const char *name, void *ctx)
{
    (void)ctx;
    if (!strcmp(name, "TELEMETRY_MAX_STRING_BYTES"))
        return "2048";
    if (!strcmp(name, "TELEMETRY_LINE_MAX_BYTES"))
        return "4096";
    if (!strcmp(name, "TELEMETRY_MAX_PROPERTIES"))
        return "8";
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tlm_config cfg;
    static int loaded;
    char err[256];
    if (!loaded) {
        if (config_load(&cfg, fuzz_env, NULL, err, sizeof(err)))
            abort();
        loaded = 1;
    }
    struct envelope env;
    struct envelope_result res;
    struct pipeline_batch batch;
    envelope_init(&env, &cfg);
    envelope_result_init(&res);
    pipeline_batch_init(&batch);
    struct envelope_identity id = {"agent\n1", "2868802f-1763-4ecd-94f6-203400001200", "pulse"};
    envelope_process(&env, (const char *)data, size, &id, 1764000000123LL, &batch, &res);
    if (res.status && batch.count)
        abort(); /* an envelope error keeps nothing */
    /* every record decodes and its line is one JSON object without a raw newline */
    size_t start = 0;
    for (size_t i = 0; i < batch.count; i++) {
        struct buf frame;
        buf_init(&frame);
        struct proto_records_writer w;
        proto_records_begin(&frame, &w, 1);
        buf_append(&frame, batch.records.p + start, batch.ends[i] - start);
        w.count = 1;
        proto_records_end(&frame, &w);
        struct proto_frame f;
        size_t used;
        struct proto_records_reader rd;
        struct proto_record r;
        if (proto_frame_parse((const uint8_t *)frame.p, frame.len, &f, &used) != PROTO_OK ||
            proto_records_validate(&f) != PROTO_OK || proto_records_open(&f, &rd) != PROTO_OK ||
            proto_records_next(&rd, &r) != PROTO_OK)
            abort();
        if (r.line.len >= (uint32_t)cfg.line_max_bytes || memchr(r.line.p, '\n', r.line.len))
            abort();
        json_t *j = json_loadb(r.line.p, r.line.len, JSON_ALLOW_NUL, NULL);
        if (!json_is_object(j) || !json_is_string(json_object_get(j, "rid")) ||
            strcmp(json_string_value(json_object_get(j, "tenantName")), "pulse"))
            abort(); /* a client can never change the tenant */
        json_decref(j);
        buf_free(&frame);
        start = batch.ends[i];
    }
    if (res.accepted != batch.count)
        abort();
    pipeline_batch_free(&batch);
    envelope_result_free(&res);
    envelope_free(&env);
    return 0;
}
