/* hash.c - SipHash-2-4 with a 64-bit output (Aumasson and Bernstein, 2012) and random
 * keys from getrandom(2). Two compression rounds per 8-byte word, four finalization rounds. */
#include "hash.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND()                                                                     \
    do {                                                                               \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                      \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                         \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                         \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                      \
    } while (0)

static inline uint64_t load_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

uint64_t hash_siphash(const struct hash_key *key, const void *data, size_t len)
{
    const unsigned char *p = data;
    /* Initialization: the key xored into the constants "somepseudorandomlygeneratedbytes". */
    uint64_t v0 = key->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = key->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = key->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = key->k1 ^ 0x7465646279746573ULL;

    size_t words = len / 8;
    for (size_t i = 0; i < words; i++, p += 8) {
        uint64_t m = load_le64(p);
        v3 ^= m;
        SIPROUND();
        SIPROUND();
        v0 ^= m;
    }
    /* Last word: the remaining 0..7 bytes, little-endian, with len mod 256 in the top byte. */
    uint64_t b = (uint64_t)(len & 0xff) << 56;
    switch (len & 7) {
    case 7: b |= (uint64_t)p[6] << 48; /* fall through */
    case 6: b |= (uint64_t)p[5] << 40; /* fall through */
    case 5: b |= (uint64_t)p[4] << 32; /* fall through */
    case 4: b |= (uint64_t)p[3] << 24; /* fall through */
    case 3: b |= (uint64_t)p[2] << 16; /* fall through */
    case 2: b |= (uint64_t)p[1] << 8;  /* fall through */
    case 1: b |= (uint64_t)p[0];       /* fall through */
    default: break;
    }
    v3 ^= b;
    SIPROUND();
    SIPROUND();
    v0 ^= b;

    v2 ^= 0xff;
    SIPROUND();
    SIPROUND();
    SIPROUND();
    SIPROUND();
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Fills buf completely; retries on EINTR and short reads. 0 ok, -1 on failure. */
static int fill_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int hash_random_key(struct hash_key *key)
{
    unsigned char raw[16];
    if (fill_random(raw, sizeof(raw)))
        return -1;
    key->k0 = load_le64(raw);
    key->k1 = load_le64(raw + 8);
    return 0;
}

uint64_t hash_random_u64(void)
{
    unsigned char raw[8];
    if (fill_random(raw, sizeof(raw)) == 0)
        return load_le64(raw);
    /* getrandom fails only without kernel support: mix clocks, pid and an address instead. */
    struct timespec rt, mono;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    struct hash_key k = {(uint64_t)rt.tv_nsec ^ (uint64_t)rt.tv_sec << 30,
                         (uint64_t)mono.tv_nsec ^ (uint64_t)(uintptr_t)&rt};
    uint64_t pid = (uint64_t)getpid();
    return hash_siphash(&k, &pid, sizeof(pid));
}
