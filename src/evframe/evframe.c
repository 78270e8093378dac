/* Whole frames out of an evbuffer, for every libevent program of the project. */
#include "tp0/evframe.h"

#include <event2/buffer.h>

enum proto_status evframe_peek(struct evbuffer *in, uint32_t max_body, struct frame_header *hdr,
                               const uint8_t **frame, const char **reason)
{
    size_t avail = evbuffer_get_length(in);
    if (avail < PROTO_HEADER_LEN) {
        return PROTO_NEED_MORE;
    }
    uint8_t head[PROTO_HEADER_LEN];
    if (evbuffer_copyout(in, head, sizeof(head)) != (ev_ssize_t)sizeof(head)) {
        *reason = "cannot read the frame header";
        return PROTO_ERROR;
    }
    /* The length is checked against the cap before waiting for the body. */
    enum proto_status st = proto_parse_header(head, sizeof(head), max_body, hdr, reason);
    if (st != PROTO_OK) {
        return st;
    }
    if (!proto_frame_complete(hdr, avail)) {
        return PROTO_NEED_MORE; /* the rest of the frame is still on its way */
    }
    /* Contiguous bytes for this one frame only, never the whole input. */
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(PROTO_HEADER_LEN + hdr->body_len));
    if (p == NULL) {
        *reason = "cannot make the frame contiguous";
        return PROTO_ERROR;
    }
    *frame = p;
    return PROTO_OK;
}

void evframe_drop(struct evbuffer *in, const struct frame_header *hdr)
{
    /* Cannot fail: evframe_peek saw the whole frame in the buffer. */
    (void)evbuffer_drain(in, PROTO_HEADER_LEN + (size_t)hdr->body_len);
}
