/* parse_slice.c - the parse slice follows the cost of a loop pass (parse_slice.h). */
#include "parse_slice.h"

void parse_slice_init(struct parse_slice *ps)
{
    ps->slice_us = PARSE_SLICE_US;
    ps->rest_us = 0;
    ps->parsed_us = 0;
}

void parse_slice_note_pass(struct parse_slice *ps, int64_t pass_us)
{
    int64_t rest = pass_us - ps->parsed_us;
    ps->parsed_us = 0;
    if (rest < 0)
        rest = 0;
    ps->rest_us += (rest - ps->rest_us) / 8;
    int64_t slice = PARSE_SLICE_PASS_RATIO * ps->rest_us;
    ps->slice_us = slice < PARSE_SLICE_US ? PARSE_SLICE_US : slice > PARSE_SLICE_MAX_US ? PARSE_SLICE_MAX_US : slice;
}
