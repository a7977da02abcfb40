/* test_parse_slice.c - ingest/parse_slice.c: the parse slice stays at its floor while loop
 * passes are cheap, follows a few times their cost when the poll gets long (many idle
 * connections), never passes its ceiling, and comes back down when passes get cheap again.
 * Parsing done in a pass is not counted as the pass's cost. */
#include "../../ingest/parse_slice.h"
#include "unit.h"

static void passes(struct parse_slice *ps, int n, int64_t pass_us, int64_t parsed_us)
{
    for (int i = 0; i < n; i++) {
        ps->parsed_us = parsed_us;
        parse_slice_note_pass(ps, pass_us);
    }
}

static void test_cheap_passes_keep_the_floor(void)
{
    struct parse_slice ps;
    parse_slice_init(&ps);
    CHECK_EQ_INT(ps.slice_us, PARSE_SLICE_US);
    passes(&ps, 100, 50, 0);
    CHECK_EQ_INT(ps.slice_us, PARSE_SLICE_US);
    /* a pass of 1 ms parsing and 60 µs of the rest: the parsing does not stretch the slice */
    passes(&ps, 100, 1060, 1000);
    CHECK_EQ_INT(ps.slice_us, PARSE_SLICE_US);
    CHECK(ps.rest_us < 70);
    CHECK_EQ_INT(ps.parsed_us, 0); /* reset for the next pass */
}

static void test_long_polls_stretch_the_slice(void)
{
    struct parse_slice ps;
    parse_slice_init(&ps);
    passes(&ps, 200, 2400 + 5000, 5000); /* 2.4 ms of poll a pass, as with 10 000 idle WebSockets */
    CHECK(ps.slice_us >= PARSE_SLICE_PASS_RATIO * 2400 - 50 && ps.slice_us <= PARSE_SLICE_PASS_RATIO * 2400);
    /* one odd pass moves it by an eighth of the difference, not all the way */
    ps.parsed_us = 0;
    parse_slice_note_pass(&ps, 100);
    CHECK(ps.slice_us > PARSE_SLICE_PASS_RATIO * 2000);
    /* and cheap passes bring it back to the floor */
    passes(&ps, 200, 40, 0);
    CHECK_EQ_INT(ps.slice_us, PARSE_SLICE_US);
}

static void test_ceiling_and_odd_input(void)
{
    struct parse_slice ps;
    parse_slice_init(&ps);
    passes(&ps, 200, 1000000, 0); /* a pass of a second (a stalled host) */
    CHECK_EQ_INT(ps.slice_us, PARSE_SLICE_MAX_US);
    parse_slice_init(&ps);
    passes(&ps, 10, 100, 500); /* more parsing than the pass took (clock steps): no negative cost */
    CHECK_EQ_INT(ps.rest_us, 0);
    CHECK_EQ_INT(ps.slice_us, PARSE_SLICE_US);
}

int main(void)
{
    RUN(test_cheap_passes_keep_the_floor);
    RUN(test_long_polls_stretch_the_slice);
    RUN(test_ceiling_and_odd_input);
    UNIT_DONE("test_parse_slice");
}
