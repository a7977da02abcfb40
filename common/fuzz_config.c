/* fuzz_config.c - libFuzzer target of the configuration parsers: the input is the value of one
 * JSON variable (chosen by its first byte); loading must fail cleanly or give a config whose
 * contracts also compile in the logshipper. */
#include <stdlib.h>
#include <string.h>

#include "../logshipper/contracts.h"
#include "config.h"
#include "prom.h"

struct fuzz_input {
    const char *name;
    const char *value;
};

static const char *getter(const char *name, void *ctx)
{
    struct fuzz_input *in = ctx;
    return strcmp(name, in->name) ? NULL : in->value;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const vars[] = {"TELEMETRY_CONFIG_CONTRACTS", "TELEMETRY_CONFIG_TENANTS",
                                       "TELEMETRY_CONFIG_CORS", "TELEMETRY_MAX_RECORDS"};
    if (size < 1)
        return 0;
    char *value = malloc(size);
    if (!value)
        return 0;
    memcpy(value, data + 1, size - 1);
    value[size - 1] = '\0';
    struct fuzz_input in = {vars[data[0] % 4], value};
    struct tlm_config cfg;
    char err[512];
    err[0] = '\0';
    if (config_load(&cfg, getter, &in, err, sizeof(err)) == 0) {
        struct prom_registry *reg = prom_registry_new(1000);
        struct contracts *c = reg ? contracts_new(cfg.contracts, reg, err, sizeof(err)) : NULL;
        contracts_free(c);
        prom_registry_free(reg);
    } else if (strncmp(err, in.name, strlen(in.name)) != 0) {
        abort(); /* every error names the variable it is about */
    }
    config_free(&cfg);
    free(value);
    return 0;
}
