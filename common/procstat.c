/* procstat.c - reads the calling process's CPU time, memory, fds and start time from
 * /proc/self/stat, /proc/self/fd and /proc/stat, and renders them as process_* metrics. */
#include "procstat.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "prom.h"

/* Reads a whole small file into buf (NUL-terminated). Returns bytes read or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The boot time in seconds since the epoch, from the "btime" line of /proc/stat. */
static int read_btime(double *btime)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int rc = -1;
    while (getline(&line, &cap, f) > 0) {
        if (!strncmp(line, "btime ", 6)) {
            *btime = (double)strtoull(line + 6, NULL, 10);
            rc = 0;
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

/* Fields of /proc/self/stat after the ")" that ends comm (which may hold spaces). */
static int read_stat(struct procstat *ps)
{
    char buf[1024];
    if (read_small("/proc/self/stat", buf, sizeof(buf)) <= 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* Field 3 (state) is the first after ")"; we want 14 utime, 15 stime, 22 starttime,
     * 23 vsize, 24 rss (pages). */
    unsigned long long v[25] = {0};
    int field = 3;
    char *end;
    while (*p && field <= 24) {
        while (*p == ' ')
            p++;
        if (field == 3) {
            while (*p && *p != ' ')
                p++;
        } else {
            v[field] = strtoull(p, &end, 10);
            if (end == p)
                return -1;
            p = end;
        }
        field++;
    }
    if (field <= 24)
        return -1;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (tck <= 0)
        tck = 100;
    if (page <= 0)
        page = 4096;
    ps->cpu_seconds = (double)(v[14] + v[15]) / (double)tck;
    ps->virtual_bytes = (double)v[23];
    ps->resident_bytes = (double)v[24] * (double)page;
    double btime;
    if (read_btime(&btime))
        return -1;
    ps->start_time_seconds = btime + (double)v[22] / (double)tck;
    return 0;
}

/* Entries of /proc/self/fd, not counting the descriptor that lists them. */
static int count_fds(double *n)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int self = dirfd(d);
    long count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (atoi(e->d_name) == self)
            continue;
        count++;
    }
    closedir(d);
    *n = (double)count;
    return 0;
}

int procstat_read(struct procstat *ps)
{
    memset(ps, 0, sizeof(*ps));
    int rc = 0;
    if (read_stat(ps))
        rc = -1;
    if (count_fds(&ps->open_fds))
        rc = -1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        ps->max_fds = rl.rlim_cur == RLIM_INFINITY ? 1.8446744073709552e19 : (double)rl.rlim_cur;
    else
        rc = -1;
    return rc;
}

static const struct {
    const char *name, *help;
    enum prom_type type;
    size_t offset;
} procstat_families[] = {
    {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
     PROM_COUNTER, offsetof(struct procstat, cpu_seconds)},
    {"process_resident_memory_bytes", "Resident memory size in bytes.", PROM_GAUGE,
     offsetof(struct procstat, resident_bytes)},
    {"process_virtual_memory_bytes", "Virtual memory size in bytes.", PROM_GAUGE,
     offsetof(struct procstat, virtual_bytes)},
    {"process_open_fds", "Number of open file descriptors.", PROM_GAUGE,
     offsetof(struct procstat, open_fds)},
    {"process_max_fds", "Maximum number of open file descriptors.", PROM_GAUGE,
     offsetof(struct procstat, max_fds)},
    {"process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
     PROM_GAUGE, offsetof(struct procstat, start_time_seconds)},
};

static void render(struct buf *out, const struct procstat *ps, const char *const *components,
                   size_t n, int with_headers)
{
    struct buf labels;
    buf_init(&labels);
    for (size_t i = 0; i < sizeof(procstat_families) / sizeof(procstat_families[0]); i++) {
        if (with_headers)
            prom_put_header(out, procstat_families[i].name, procstat_families[i].help,
                            procstat_families[i].type);
        for (size_t j = 0; j < n; j++) {
            const char *c = components[j] ? components[j] : "";
            buf_reset(&labels);
            buf_puts(&labels, "component=");
            prom_put_label_value(&labels, c, strlen(c));
            double v;
            memcpy(&v, (const char *)&ps[j] + procstat_families[i].offset, sizeof(v));
            prom_put_sample(out, procstat_families[i].name, labels.oom ? NULL : labels.p, v);
        }
    }
    buf_free(&labels);
}

void procstat_render(struct buf *out, const struct procstat *ps, const char *component,
                     int with_headers)
{
    render(out, ps, &component, 1, with_headers);
}

void procstat_render_many(struct buf *out, const struct procstat *ps,
                          const char *const *components, size_t n)
{
    render(out, ps, components, n, 1);
}
