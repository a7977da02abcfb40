/* contract_regex.c - a monitoredEvents pattern compiled with JavaScript's meaning. */
#include "contract_regex.h"

#include <stdio.h>

/* JavaScript-compatible escapes (\uhhhh, \u{h..}, \xhh), `$` only at the very end,
 * whole-name anchoring by options (every alternative, both ends), UTF-8 with invalid bytes
 * allowed in subjects (they never match), no \C (could split a character). */
#define RE_OPTIONS                                                                         \
    (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED |            \
     PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C)

pcre2_code *contract_regex_compile(const char *pattern, size_t len, size_t *offset, char *why, size_t whylen)
{
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (!cctx) {
        snprintf(why, whylen, "out of memory");
        *offset = 0;
        return NULL;
    }
    pcre2_set_compile_extra_options(cctx, PCRE2_EXTRA_ALT_BSUX);
    int code;
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, RE_OPTIONS, &code, &off, cctx);
    pcre2_compile_context_free(cctx);
    *offset = (size_t)off;
    if (!re && pcre2_get_error_message(code, (PCRE2_UCHAR *)why, whylen) < 0)
        snprintf(why, whylen, "error %d", code);
    return re;
}
