/* contracts.h - evaluates each written record against its app's contract into metrics:
 * monitored events (PCRE2, whole-name match), threshold violations, apdex, bucketized histograms. */
#ifndef TLM_CONTRACTS_H
#define TLM_CONTRACTS_H

#include <jansson.h>
#include <stddef.h>

#include "../common/prom.h"
#include "../proto/tlm_proto.h"

struct contracts;

/* Compiles every contract of TELEMETRY_CONFIG_CONTRACTS (already checked by config_load:
 * shape, patterns, reserved names) and declares its metric families in reg, where a name
 * clash is found. NULL with err naming the variable and the
 * position (e.g. "TELEMETRY_CONFIG_CONTRACTS: at [0].monitoredEvents[2]: offset 3: ...") on error. */
struct contracts *contracts_new(const json_t *contracts, struct prom_registry *reg, char *err, size_t errlen);
/* Counts one record (called once per record, after it was written). */
void contracts_observe(struct contracts *c, const struct proto_record *r);
void contracts_free(struct contracts *c);

#endif
