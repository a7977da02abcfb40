/* metrics_merge.h - joins the logshipper's Prometheus text with the ingest's (from its STATS
 * frames) so that every metric family appears once, as the exposition format requires. */
#ifndef TLM_METRICS_MERGE_H
#define TLM_METRICS_MERGE_H

#include <stddef.h>

#include "../common/buf.h"

/* Appends to out: each family of local (its # HELP / # TYPE and samples), followed, when
 * other has a family of the same name, by other's samples of it (its metadata dropped, and
 * any sample of a series local already has: local wins, no duplicate series); then the
 * families found only in other, as they are. A family is a run of lines under
 * one name: metadata lines and samples named like it (histogram/summary samples may add
 * _bucket, _sum, _count). Blank lines are dropped; every line ends with '\n'. */
void metrics_merge(struct buf *out, const char *local, size_t llen, const char *other,
                   size_t olen);

#endif
