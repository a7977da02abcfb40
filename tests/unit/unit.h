/* unit.h - the unit-test harness: CHECK macros, one line per failed check, and the
 * standard closing line "N passed, N failed" that tests/run-all.sh adds up. */
#ifndef TLM_UNIT_H
#define TLM_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            unit_passed++;                                                             \
        } else {                                                                       \
            unit_failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
        }                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                             \
    do {                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                            \
        if (a_ == b_) {                                                                \
            unit_passed++;                                                             \
        } else {                                                                       \
            unit_failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, \
                    #a, #b, a_, b_);                                                   \
        }                                                                              \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                             \
    do {                                                                               \
        const char *a_ = (a), *b_ = (b);                                               \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                         \
            unit_passed++;                                                             \
        } else {                                                                       \
            unit_failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", __FILE__,      \
                    __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");        \
        }                                                                              \
    } while (0)

/* Runs one test function and names it when it failed something. */
#define RUN(fn)                                                                        \
    do {                                                                               \
        int before_ = unit_failed;                                                     \
        fn();                                                                          \
        if (unit_failed != before_)                                                    \
            fprintf(stderr, "  in %s\n", #fn);                                         \
    } while (0)

#define UNIT_DONE(name)                                                                \
    do {                                                                               \
        printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);          \
        return unit_failed ? 1 : 0;                                                    \
    } while (0)

#endif
