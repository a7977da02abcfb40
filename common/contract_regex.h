/* contract_regex.h - compiles a contract's monitoredEvents pattern the way the original
 * service's JavaScript did, for the logshipper (which matches with it) and for config
 * checking in both daemons (so a bad pattern stops either at start, with its position). */
#ifndef TLM_CONTRACT_REGEX_H
#define TLM_CONTRACT_REGEX_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stddef.h>

/* The compiled pattern (free with pcre2_code_free), or NULL with PCRE2's message in why
 * and the byte offset of the error in *offset. */
pcre2_code *contract_regex_compile(const char *pattern, size_t len, size_t *offset, char *why, size_t whylen);

#endif
