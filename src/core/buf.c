/* The growable byte buffer. */
#include "tp0/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp0/util.h"

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

uint8_t *buf_reserve(struct buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len) {
        fprintf(stderr, "buffer size overflow\n");
        abort();
    }
    size_t need = b->len + extra;
    if (need > b->cap) {
        /* Doubling keeps appends amortised O(1). */
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) {
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        }
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
    if (len == 0) {
        return;
    }
    memcpy(buf_reserve(b, len), data, len);
    b->len += len;
}

void buf_append_byte(struct buf *b, uint8_t byte)
{
    *buf_reserve(b, 1) = byte;
    b->len++;
}

static inline void put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void buf_append_u32le(struct buf *b, uint32_t v)
{
    put_u32le(buf_reserve(b, 4), v);
    b->len += 4;
}

void buf_put_u32le_at(struct buf *b, size_t offset, uint32_t v)
{
    if (offset > b->len || b->len - offset < 4) {
        fprintf(stderr, "buf_put_u32le_at: offset %zu out of range (len %zu)\n", offset, b->len);
        abort();
    }
    put_u32le(b->data + offset, v);
}
