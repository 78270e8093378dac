/*
 * The libevent side of the wire protocol, shared by the server, the client and
 * the load generator: finds whole frames at the start of an evbuffer. The
 * header is copied out and checked against the cap before anything waits for
 * the body, and at most one frame is ever made contiguous.
 */
#ifndef TP0_EVFRAME_H
#define TP0_EVFRAME_H

#include <stdint.h>

#include "tp0/protocol.h"

struct evbuffer;

/*
 * PROTO_NEED_MORE until a whole frame is at the start of `in`; PROTO_OK with
 * *hdr and *frame (the whole frame, header included, contiguous and valid until
 * evframe_drop or the next change to `in`); PROTO_ERROR with *reason for bytes
 * that can never be a frame (see proto_parse_header).
 */
enum proto_status evframe_peek(struct evbuffer *in, uint32_t max_body, struct frame_header *hdr,
                               const uint8_t **frame, const char **reason);

/* Removes the frame evframe_peek returned. */
void evframe_drop(struct evbuffer *in, const struct frame_header *hdr);

#endif
