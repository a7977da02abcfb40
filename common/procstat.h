/* procstat.h - process metrics of the calling process from /proc/self (CPU, memory, fds,
 * start time), rendered as the standard process_* Prometheus families with a component label. */
#ifndef TLM_PROCSTAT_H
#define TLM_PROCSTAT_H

#include <stddef.h>

#include "buf.h"

struct procstat {
    double cpu_seconds;        /* utime + stime */
    double resident_bytes;     /* RSS */
    double virtual_bytes;      /* VSZ */
    double open_fds;           /* entries of /proc/self/fd */
    double max_fds;            /* RLIMIT_NOFILE soft limit */
    double start_time_seconds; /* since the Unix epoch */
};

/* Fills ps (fields that could not be read stay 0). 0 ok, -1 if anything failed. */
int procstat_read(struct procstat *ps);

/* Writes the six families for one process, each sample labelled component="<component>";
 * with_headers = 0 writes the samples only (for appending under headers already written). */
void procstat_render(struct buf *out, const struct procstat *ps, const char *component,
                     int with_headers);

/* Writes the six families once each, with one sample per process: ps[i] is labelled
 * component="<components[i]>". The logshipper uses this for itself and the ingest. */
void procstat_render_many(struct buf *out, const struct procstat *ps,
                          const char *const *components, size_t n);

#endif
