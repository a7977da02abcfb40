/* parse_slice.h - how long the ingest parses queued bodies before it polls again.
 *
 * A loop pass costs the poll, then the reads and writes of the ready connections. Usually
 * that is tens of microseconds, and 1 ms slices of parsing (PARSE_SLICE_US) keep answers
 * moving. When a pass is costly (many connections ready at once; with lws's poll(2) loop,
 * thousands of idle ones: 2.4 ms a pass with 10 000 open on the bench host, where 1 ms
 * slices left most of the core to polling), the rest of each busy pass (one that did not
 * wait for events) is averaged, and a slice lasts PARSE_SLICE_PASS_RATIO times that,
 * within PARSE_SLICE_US..PARSE_SLICE_MAX_US: the fixed cost of a pass stays a fraction. */
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
