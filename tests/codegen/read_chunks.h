/*
 * read_chunks.h — what tests/codegen/test_deploy.c and tests/fuzz/
 * fuzz_deploy.c share: reading bytes through the deployment program's
 * streaming reader (nna_read) in chunks of a few bytes, as from a pipe, and
 * comparing the answer with nna_decode's on the whole.  Include after
 * codegen/aot/deploy.h and <string.h>.
 */
#ifndef NNCC_TESTS_READ_CHUNKS_H
#define NNCC_TESTS_READ_CHUNKS_H

/* A source that hands out the bytes `step` at a time, as a pipe might. */
struct chunks {
    const unsigned char *p;
    size_t len, at, step;
};

static inline int chunk_fill(void *ctx, const unsigned char **p, size_t *len)
{
    struct chunks *c = ctx;
    *p = c->p + c->at;
    *len = c->len - c->at < c->step ? c->len - c->at : c->step;
    c->at += *len;
    return 0;
}

/* nna_read of len bytes in chunks of step, the size known or not: the same
 * answer as nna_decode of the whole (ok: it succeeded, with array *whole). */
static inline int same_in_chunks(const unsigned char *b, size_t len, enum nna_format fmt, long row,
                          size_t step, int size_known, int ok, const struct nna_array *whole)
{
    struct chunks c = {b, len, 0, step};
    struct nna_src src = {.fill = chunk_fill, .ctx = &c};
    struct nna_array a;
    char err[400] = "";
    int rc = nna_read(&src, size_known ? len : NNA_SIZE_UNKNOWN, fmt, row, &a, err, sizeof err);
    if ((rc == 0) != ok)
        return 0;
    if (rc)
        return err[0] != '\0' && !a.data;
    int same = a.rank == whole->rank && a.count == whole->count && a.u8 == whole->u8 &&
               memcmp(a.dims, whole->dims, sizeof a.dims) == 0 &&
               memcmp(a.data, whole->data, (size_t)a.count * sizeof(float)) == 0;
    nna_array_free(&a);
    return same;
}

#endif
