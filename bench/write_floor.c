/* write_floor.c - the stdout floor of `make bench`: how fast one core can append bytes to a
 * new file on /dev/shm, the file the logshipper's stdout goes to in every tlm point.
 *
 *   write_floor --file PATH [--chunk BYTES] [--seconds S] [--wrap BYTES]
 *
 * Appends CHUNK bytes of JSON-looking text per write(2) to PATH (created empty, opened
 * O_APPEND as the shell's >> opens the logshipper's stdout) for S seconds. Every WRAP bytes
 * the file is truncated to zero, as run.sh empties it before each point, so the pages written
 * are new ones each time, as they are for the logshipper. Prints key=value: bytes, writes,
 * seconds, mb_per_s. run.sh pins it to the service's core.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: write_floor --file PATH [--chunk BYTES] [--seconds S] [--wrap BYTES]\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    size_t chunk = 64 * 1024;
    double seconds = 5;
    uint64_t wrap = 1ull << 30;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--wrap") && i + 1 < argc)
            wrap = strtoull(argv[++i], NULL, 10);
        else {
            usage();
            return 2;
        }
    }
    if (!path || !chunk || chunk > (64u << 20) || wrap < chunk) {
        usage();
        return 2;
    }
    char *buf = malloc(chunk);
    if (!buf) {
        fprintf(stderr, "write_floor: out of memory\n");
        return 1;
    }
    /* lines of printable text, as the logshipper writes */
    static const char line[] = "{\"ts\":\"2026-12-07T19:04:08.123Z\",\"level\":\"info\",\"msg\":\"agent state changed\"}\n";
    for (size_t i = 0; i < chunk; i++)
        buf[i] = line[i % (sizeof(line) - 1)];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("write_floor: open");
        free(buf);
        return 1;
    }
    uint64_t bytes = 0, writes = 0, in_file = 0;
    double t0 = now_s(), t = t0;
    int rc = 0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 16; k++) { /* read the clock every 16 writes */
            ssize_t n = write(fd, buf, chunk);
            if (n <= 0) {
                perror("write_floor: write");
                rc = 1;
                goto out;
            }
            bytes += (uint64_t)n;
            in_file += (uint64_t)n;
            writes++;
            if (in_file >= wrap) {
                if (ftruncate(fd, 0)) {
                    perror("write_floor: ftruncate");
                    rc = 1;
                    goto out;
                }
                in_file = 0;
            }
        }
        t = now_s();
    }
out:;
    double el = t - t0;
    close(fd);
    unlink(path);
    free(buf);
    if (rc)
        return rc;
    printf("bytes=%llu\nwrites=%llu\nchunk=%zu\nseconds=%.2f\nmb_per_s=%.1f\n", (unsigned long long)bytes,
           (unsigned long long)writes, chunk, el, el > 0 ? (double)bytes / el / 1e6 : 0.0);
    return 0;
}
