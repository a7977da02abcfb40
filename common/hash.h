/* hash.h - SipHash-2-4: keyed hashing for token cache keys, record ids and hash tables. */
#ifndef TLM_HASH_H
#define TLM_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash_key {
    uint64_t k0, k1;
};

uint64_t hash_siphash(const struct hash_key *key, const void *data, size_t len);
/* 16 random bytes from getrandom(); 0 ok. */
int hash_random_key(struct hash_key *key);
uint64_t hash_random_u64(void);

#endif
