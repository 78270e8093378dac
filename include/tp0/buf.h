/* A growable byte buffer: the one place output is assembled before a write. */
#ifndef TP0_BUF_H
#define TP0_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Makes room for at least `extra` more bytes; returns a pointer to data + len. */
uint8_t *buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_byte(struct buf *b, uint8_t byte);
void buf_append_u32le(struct buf *b, uint32_t v);
/* Writes v little-endian at an offset that already exists (for length patching). */
void buf_put_u32le_at(struct buf *b, size_t offset, uint32_t v);
/* Drops the contents but keeps the allocation for reuse. */
static inline void buf_reset(struct buf *b)
{
    b->len = 0;
}

#endif
