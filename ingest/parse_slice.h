/* parse_slice.h - how long the ingest parses queued bodies before it polls again.
 *
 * A loop pass costs poll(2) over every open connection, then the reads and writes of the
 * ready ones. With few connections that is tens of microseconds, and 1 ms slices of
 * parsing (PARSE_SLICE_US) keep answers moving. With thousands of idle WebSockets open the
 * poll alone takes milliseconds (2.4 ms with 10 000 on the bench host), and 1 ms slices
 * left most of the core to it: HTTP load alongside 10 000 idle connections ran at
 * 0.12-0.17 of its rate without them. So the rest of each busy pass (one that did not wait
 * in poll) is averaged, and a slice lasts PARSE_SLICE_PASS_RATIO times that, within
 * PARSE_SLICE_US..PARSE_SLICE_MAX_US: the fixed cost of a pass stays a fraction of it. */
#ifndef TLM_PARSE_SLICE_H
#define TLM_PARSE_SLICE_H

#include <stdint.h>

#define PARSE_SLICE_US 1000      /* microseconds of parsing between two polls, at least */
#define PARSE_SLICE_MAX_US 20000 /* and at most, however long a pass's poll takes */
#define PARSE_SLICE_PASS_RATIO 3 /* a slice lasts this many times the rest of a busy pass */

struct parse_slice {
    int64_t slice_us;   /* the slice now */
    int64_t rest_us;    /* the rest of a busy pass (poll, reads, writes), averaged over ~8 */
    int64_t parsed_us;  /* parsing done in the current pass */
};

void parse_slice_init(struct parse_slice *ps);

/* A busy pass took pass_us in all, of which ps->parsed_us parsing: the slice follows the
 * rest. Resets parsed_us for the next pass. */
void parse_slice_note_pass(struct parse_slice *ps, int64_t pass_us);

#endif
