/* json_ceiling.c - the parse-only ceiling of `make bench`: how many records per second
 * jansson alone can parse on one core, with the bench's own batch template.
 *
 *   json_ceiling --payload FILE [--seconds S] [--arena] [--durations FILE]
 *
 * The template's @ID@ marks are replaced by a fixed 16-hex-digit tag (as the load
 * generators do), then json_loadb (the flags the ingest uses) + json_decref run in a loop.
 * With --arena jansson allocates from a bump arena emptied after each parse (what the
 * ingest's json_arena.c does), the fastest jansson parse there is: the floor of the bench's
 * "what this host allows" table. Without it, jansson's default malloc: the ceiling the
 * issue's tlm / ceiling ratio is defined against.
 * With --durations every parse is timed on its own and FILE gets one duration a line, in
 * microseconds: how steady the host is, for report.py (the same work taking longer in some
 * stretches than in others puts a tail on any latency, whatever the service).
 * Prints key=value: parses, records per batch, records/s, MB/s. run.sh pins it to a core.
 */
#include <jansson.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* a bump arena for --arena: 16-byte aligned blocks, nothing freed until the parse is over;
 * blocks that do not fit come from malloc and go back to free */
#define ARENA_BYTES (8u << 20)
static unsigned char *arena;
static size_t arena_used;

static void *arena_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (arena_used + n > ARENA_BYTES)
        return malloc(n);
    void *p = arena + arena_used;
    arena_used += n;
    return p;
}

static void arena_release(void *p)
{
    unsigned char *c = p;
    if (c && (c < arena || c >= arena + ARENA_BYTES))
        free(p);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define USAGE "usage: json_ceiling --payload FILE [--seconds S] [--arena] [--durations FILE]\n"

/* per-parse durations for --durations, in microseconds */
struct durations {
    float *us;
    size_t n, cap;
};

static int durations_add(struct durations *d, double us)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16384;
        float *p = realloc(d->us, cap * sizeof(*p));
        if (!p)
            return -1;
        d->us = p;
        d->cap = cap;
    }
    d->us[d->n++] = (float)us;
    return 0;
}

static int durations_write(const struct durations *d, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < d->n; i++)
        fprintf(f, "%.1f\n", d->us[i]);
    return fclose(f);
}

static char *read_template(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *raw = malloc((size_t)n + 1);
    if (!raw || fread(raw, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(raw);
        return NULL;
    }
    fclose(f);
    raw[n] = '\0';
    size_t marks = 0;
    for (const char *p = raw; (p = strstr(p, "@ID@")); p += 4)
        marks++;
    char *body = malloc((size_t)n + marks * 12 + 1), *o = body;
    if (!body) {
        free(raw);
        return NULL;
    }
    for (const char *p = raw;;) {
        const char *at = strstr(p, "@ID@");
        size_t k = at ? (size_t)(at - p) : strlen(p);
        memcpy(o, p, k);
        o += k;
        if (!at)
            break;
        memcpy(o, "0f0f00000000002a", 16);
        o += 16;
        p = at + 4;
    }
    *o = '\0';
    free(raw);
    *out_len = (size_t)(o - body);
    return body;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *durations_path = NULL;
    double seconds = 5;
    int use_arena = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--payload") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--arena"))
            use_arena = 1;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--durations") && i + 1 < argc)
            durations_path = argv[++i];
        else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (!path) {
        fputs(USAGE, stderr);
        return 2;
    }
    size_t len;
    char *body = read_template(path, &len);
    if (!body) {
        fprintf(stderr, "json_ceiling: cannot read %s\n", path);
        return 1;
    }
    json_error_t err;
    json_t *probe = json_loadb(body, len, JSON_ALLOW_NUL, &err);
    if (!probe) {
        fprintf(stderr, "json_ceiling: the template is not JSON: %s (line %d)\n", err.text, err.line);
        return 1;
    }
    size_t records = json_array_size(json_object_get(probe, "traces")) +
                     json_array_size(json_object_get(probe, "events")) +
                     json_array_size(json_object_get(probe, "metrics"));
    json_decref(probe);
    if (use_arena) {
        arena = aligned_alloc(16, ARENA_BYTES);
        if (!arena) {
            fprintf(stderr, "json_ceiling: out of memory\n");
            return 1;
        }
        json_set_alloc_funcs(arena_alloc, arena_release);
    }

    uint64_t parses = 0;
    struct durations d = {0};
    int every = durations_path ? 1 : 64; /* read the clock every parse, or every 64 */
    double t0 = now_s(), t = t0;
    while (t - t0 < seconds) {
        double start = t;
        for (int k = 0; k < every; k++) {
            json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
            if (!j)
                return 1;
            json_decref(j);
            arena_used = 0;
        }
        parses += (uint64_t)every;
        t = now_s();
        if (durations_path && durations_add(&d, (t - start) * 1e6)) {
            fprintf(stderr, "json_ceiling: out of memory\n");
            return 1;
        }
    }
    double el = t - t0;
    printf("arena=%d\nparses=%llu\nbatch=%zu\nbody_bytes=%zu\nseconds=%.2f\nrecords_per_s=%.0f\nmb_per_s=%.1f\n",
           use_arena, (unsigned long long)parses, records, len, el, (double)parses * (double)records / el,
           (double)parses * (double)len / el / 1e6);
    if (durations_path && durations_write(&d, durations_path)) {
        fprintf(stderr, "json_ceiling: cannot write %s\n", durations_path);
        return 1;
    }
    free(d.us);
    free(body);
    free(arena);
    return 0;
}
