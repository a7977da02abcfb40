/* test_procstat.c - process metrics of this test process: values that follow what the
 * test does (fds opened, CPU burnt, memory touched) and rendering for one or two processes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../common/buf.h"
#include "../../common/procstat.h"
#include "unit.h"

static void test_read(void)
{
    struct procstat a, b;
    CHECK_EQ_INT(procstat_read(&a), 0);
    CHECK(a.cpu_seconds >= 0);
    CHECK(a.resident_bytes > 4096);
    CHECK(a.virtual_bytes >= a.resident_bytes);
    CHECK(a.open_fds >= 3);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    CHECK(a.max_fds == (double)rl.rlim_cur);
    /* this process started moments ago */
    double now = (double)time(NULL);
    CHECK(a.start_time_seconds <= now + 1 && a.start_time_seconds > now - 120);

    /* three more fds are seen as three more */
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    CHECK_EQ_INT(procstat_read(&b), 0);
    CHECK_EQ_INT((long)(b.open_fds - a.open_fds), 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);

    /* 64 MiB mapped and touched shows in VSZ and RSS (mmap: no allocator in between) */
    size_t sz = 64u << 20;
    char *mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    memset(mem, 1, sz);
    CHECK_EQ_INT(procstat_read(&b), 0);
    CHECK(b.resident_bytes >= a.resident_bytes + (double)(sz / 2));
    CHECK(b.virtual_bytes >= a.virtual_bytes + (double)sz);
    munmap(mem, sz);

    /* about 0.3 s of CPU shows in cpu_seconds */
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 1000000; i++)
            x += (unsigned long)i * 7;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    } while ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 < 0.3);
    (void)x;
    CHECK_EQ_INT(procstat_read(&b), 0);
    CHECK(b.cpu_seconds >= a.cpu_seconds + 0.2);
    CHECK(b.cpu_seconds < a.cpu_seconds + 30);
    CHECK(b.start_time_seconds == a.start_time_seconds);
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static int promtool_ok(const char *text, size_t len)
{
    if (access("/usr/bin/promtool", X_OK))
        return -1;
    FILE *p = popen("/usr/bin/promtool check metrics", "w");
    if (!p)
        return 0;
    fwrite(text, 1, len, p);
    int st = pclose(p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_render(void)
{
    struct procstat ps[2] = {{1.5, 1048576, 4194304, 7, 1024, 1764000000.25},
                             {0.02, 2048, 8192, 3, 65536, 1764000001}};
    struct buf b;
    buf_init(&b);
    procstat_render(&b, &ps[0], "ingest", 1);
    CHECK_EQ_STR(b.p,
                 "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                 "# TYPE process_cpu_seconds_total counter\n"
                 "process_cpu_seconds_total{component=\"ingest\"} 1.5\n"
                 "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                 "# TYPE process_resident_memory_bytes gauge\n"
                 "process_resident_memory_bytes{component=\"ingest\"} 1048576\n"
                 "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                 "# TYPE process_virtual_memory_bytes gauge\n"
                 "process_virtual_memory_bytes{component=\"ingest\"} 4194304\n"
                 "# HELP process_open_fds Number of open file descriptors.\n"
                 "# TYPE process_open_fds gauge\n"
                 "process_open_fds{component=\"ingest\"} 7\n"
                 "# HELP process_max_fds Maximum number of open file descriptors.\n"
                 "# TYPE process_max_fds gauge\n"
                 "process_max_fds{component=\"ingest\"} 1024\n"
                 "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                 "# TYPE process_start_time_seconds gauge\n"
                 "process_start_time_seconds{component=\"ingest\"} 1764000000.25\n");
    buf_reset(&b);
    procstat_render(&b, &ps[1], "x\"y", 0);
    CHECK_EQ_INT(count(b.p, "# "), 0);
    CHECK_EQ_INT(count(b.p, "\n"), 6);
    CHECK(strstr(b.p, "process_open_fds{component=\"x\\\"y\"} 3\n") != NULL);

    static const char *const comps[] = {"logshipper", "ingest"};
    buf_reset(&b);
    procstat_render_many(&b, ps, comps, 2);
    CHECK_EQ_INT(count(b.p, "# HELP "), 6);
    CHECK_EQ_INT(count(b.p, "# TYPE "), 6);
    CHECK_EQ_INT(count(b.p, "{component=\"logshipper\"}"), 6);
    CHECK_EQ_INT(count(b.p, "{component=\"ingest\"}"), 6);
    /* both samples of a family sit together, right after its TYPE line */
    CHECK(strstr(b.p, "# TYPE process_max_fds gauge\nprocess_max_fds{component=\"logshipper\"} 1024\n"
                      "process_max_fds{component=\"ingest\"} 65536\n# HELP") != NULL);
    int ok = promtool_ok(b.p, b.len);
    if (ok >= 0)
        CHECK_EQ_INT(ok, 1);

    /* and with live values */
    struct procstat live;
    procstat_read(&live);
    buf_reset(&b);
    procstat_render_many(&b, &live, comps, 1);
    ok = promtool_ok(b.p, b.len);
    if (ok >= 0)
        CHECK_EQ_INT(ok, 1);
    buf_free(&b);
}

int main(void)
{
    RUN(test_read);
    RUN(test_render);
    UNIT_DONE("procstat");
}
