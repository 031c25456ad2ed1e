/*
 * sha256.h — SHA-256 (FIPS 180-4), used to name JIT cache entries.
 *
 * Contract: nncc_sha256_init() a context, feed it any number of
 * nncc_sha256_update() calls (any lengths, including 0), then
 * nncc_sha256_final() writes the 32-byte digest; the context must be
 * re-initialised before reuse.  nncc_sha256_hex() formats a digest as 64
 * lowercase hex digits plus a NUL; nncc_sha256_str() does all of it for one
 * buffer.  No allocation, no global state.
 */
#ifndef NNCC_RUNTIME_SHA256_H
#define NNCC_RUNTIME_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define NNCC_SHA256_SIZE 32     /* digest bytes */
#define NNCC_SHA256_HEX_SIZE 65 /* 64 hex digits + NUL */

struct nncc_sha256 {
    uint32_t h[8];          /* running hash state */
    uint64_t nbytes;        /* message length so far */
    unsigned char buf[64];  /* a partial block */
    size_t buflen;          /* bytes used in buf */
};

void nncc_sha256_init(struct nncc_sha256 *s);
void nncc_sha256_update(struct nncc_sha256 *s, const void *data, size_t len);
void nncc_sha256_final(struct nncc_sha256 *s, unsigned char digest[NNCC_SHA256_SIZE]);

/* Formats a digest as lowercase hex into hex[NNCC_SHA256_HEX_SIZE]. */
void nncc_sha256_hex(const unsigned char digest[NNCC_SHA256_SIZE],
                     char hex[NNCC_SHA256_HEX_SIZE]);

/* One-shot: the hex SHA-256 of data[0..len). */
void nncc_sha256_str(const void *data, size_t len, char hex[NNCC_SHA256_HEX_SIZE]);

#endif
