/*
 * arena.c — the memory a graph's nodes, values and names live in: blocks
 * of 64 KiB (or one block as large as a bigger request) that are freed
 * together with the graph, so nothing built for a graph is freed one by
 * one.  Allocations are zeroed and 16-byte aligned; running out of memory
 * returns NULL with NNCC_ERR_NOMEM set.
 */
#include <stdlib.h>
#include <string.h>
#include "ir/ir.h"

struct nncc_arena_block {
    struct nncc_arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK 65536

void *nncc_arena_alloc(struct nncc_arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct nncc_arena_block *b = a->head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NNCC_FAIL_NULL(NNCC_ERR_NOMEM, "out of memory (arena block of %zu bytes)", cap);
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    a->total += size;
    memset(p, 0, size);
    return p;
}

char *nncc_arena_strdup(struct nncc_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = nncc_arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void nncc_arena_free(struct nncc_arena *a)
{
    struct nncc_arena_block *b = a->head;
    while (b) {
        struct nncc_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}
