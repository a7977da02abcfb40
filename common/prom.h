/* prom.h - Prometheus text exposition: families, labelled series with a global cap,
 * label escaping, histograms. The logshipper keeps its metrics here; the ingest renders
 * its counters with it into STATS frames. Not thread-safe: one registry per event loop. */
#ifndef TLM_PROM_H
#define TLM_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

struct prom_registry;
struct prom_family;

/* max_series bounds the labelled series of every family together (TELEMETRY_METRICS_THRESHOLD).
 * A series that would pass it is not created; the refusal is counted in
 * telemetry_metric_series_dropped_total, which the registry always renders. */
struct prom_registry *prom_registry_new(size_t max_series);
void prom_registry_free(struct prom_registry *r);

/* Declares a family (name and label names are the caller's literals, checked to be
 * valid Prometheus names). buckets/nbuckets only for PROM_HISTOGRAM (ascending, +Inf implied). */
struct prom_family *prom_family_new(struct prom_registry *r, const char *name, const char *help,
                                    enum prom_type type, const char *const *label_names,
                                    size_t nlabels, const double *buckets, size_t nbuckets);
/* Finds a family by name, NULL when absent. */
struct prom_family *prom_family_find(struct prom_registry *r, const char *name);

/* Label values are any bytes (escaped on output); nvalues must equal the family's nlabels.
 * Return 0, or -1 when the series cap refused a new series. */
int prom_counter_add(struct prom_family *f, const char *const *values, double v);
int prom_gauge_set(struct prom_family *f, const char *const *values, double v);
int prom_histogram_observe(struct prom_family *f, const char *const *values, double v);

/* Current value of a counter/gauge series, 0 if absent (for tests). */
double prom_value(struct prom_family *f, const char *const *values);
size_t prom_series_count(const struct prom_registry *r);
uint64_t prom_series_dropped(const struct prom_registry *r);

/* Renders every family in declaration order: # HELP, # TYPE, samples. */
void prom_render(const struct prom_registry *r, struct buf *out);

/* Helpers for code that renders its own plain counters without a registry. */
void prom_put_header(struct buf *out, const char *name, const char *help, enum prom_type t);
void prom_put_label_value(struct buf *out, const char *s, size_t len); /* "..." escaped */
/* name{labels} value\n; labels is already-rendered k="v" text or NULL. */
void prom_put_sample(struct buf *out, const char *name, const char *labels, double v);
/* A whole family of one unlabelled sample: # HELP, # TYPE, the sample. */
void prom_put_single(struct buf *out, const char *name, const char *help, enum prom_type t, double v);
/* 1 when s is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). */
int prom_valid_name(const char *s);
/* Writes a valid metric name from arbitrary text into out (invalid chars become '_'). */
void prom_sanitize_name(const char *s, char *out, size_t outlen);

#endif
