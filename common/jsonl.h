/* jsonl.h - writing client strings into one safe JSON line.
 * Invalid UTF-8 becomes U+FFFD, every control character (C0, DEL, C1, U+2028/9) is escaped,
 * so no client string can break a line or forge a key. */
#ifndef TLM_JSONL_H
#define TLM_JSONL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Appends "..." (with quotes). */
void jsonl_put_string(struct buf *out, const char *s, size_t len);
/* Like jsonl_put_string but stops before the escaped output would exceed max_out bytes
 * (quotes included), never inside a UTF-8 sequence or an escape. Returns 1 if cut. */
int jsonl_put_string_max(struct buf *out, const char *s, size_t len, size_t max_out);
/* Size jsonl_put_string would write, quotes included. */
size_t jsonl_string_size(const char *s, size_t len);
/* When s is not valid UTF-8, writes into out (reset first) a copy with every invalid maximal
 * subpart replaced by U+FFFD and returns 1; returns 0 (out untouched) when s is valid. */
int jsonl_utf8_repair(struct buf *out, const char *s, size_t len);
/* RFC 3339 UTC with milliseconds: 2026-11-24T10:00:00.123Z (24 bytes). */
void jsonl_put_time(struct buf *out, int64_t epoch_ms);
/* Parses RFC 3339 (date-time with offset or Z, optional fraction). 0 ok, -1 invalid. */
int jsonl_parse_time(const char *s, size_t len, int64_t *epoch_ms);

#endif
