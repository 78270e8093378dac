/*
 * The wire protocol shared by server and client. No I/O here: every function
 * works on byte ranges, so tests and fuzzers can drive it directly.
 *
 * Frame: opcode u8 | length i32 little-endian | body (length bytes).
 * Body types: [int] i32 LE; [string] [int n] + n bytes of UTF-8;
 * [string map] [int m] + m pairs of [string] key, [string] value.
 * Bump PROTO_VERSION (README too) on any change to this file's wire format.
 */
#ifndef TP0_PROTOCOL_H
#define TP0_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp0/bet.h"
#include "tp0/buf.h"

#define PROTO_VERSION    1
#define PROTO_HEADER_LEN 5
/* Default cap on a frame's body length; configurable per program. */
#define PROTO_DEFAULT_MAX_BODY (1u << 20)
/* The client never sends a frame larger than this, header included. */
#define PROTO_CLIENT_MAX_FRAME 8192u
/* Every NEW_BETS map carries exactly these keys. */
#define PROTO_BET_KEYS 6

enum opcode {
    OP_NEW_BETS = 0,          /* client -> server: [int n] n x [string map] */
    OP_BETS_RECV_SUCCESS = 1, /* server -> client: empty body */
    OP_BETS_RECV_FAIL = 2,    /* server -> client: empty body */
    OP_FINISHED = 3,          /* client -> server: [int agency] */
    OP_WINNERS = 4,           /* server -> client: [int count] count x [string] */
    OP_ECHO = 5,              /* both ways: any body, answered verbatim */
};

const char *opcode_name(uint8_t opcode); /* "NEW_BETS", ..., or "UNKNOWN" */

enum proto_status {
    PROTO_OK,        /* a whole frame (or value) is there */
    PROTO_NEED_MORE, /* not enough bytes yet; call again with more */
    PROTO_ERROR,     /* the bytes can never form a valid frame: reason set */
};

struct frame_header {
    uint8_t opcode;
    uint32_t body_len; /* already checked: 0 <= body_len <= max_body */
};

/*
 * Step one of incremental decoding: looks at the first bytes of a stream.
 * NEED_MORE while fewer than PROTO_HEADER_LEN bytes are available. ERROR for an
 * unknown opcode, a negative length, or a length above max_body (checked before
 * anyone waits for or allocates the body); *reason then points to a per-thread
 * buffer valid until the next call. OK fills *hdr; the whole frame is
 * available once avail >= PROTO_HEADER_LEN + hdr->body_len, which
 * proto_frame_complete() tells. Never reads past `avail` bytes.
 */
enum proto_status proto_parse_header(const uint8_t *data, size_t avail, uint32_t max_body,
                                     struct frame_header *hdr, const char **reason);
bool proto_frame_complete(const struct frame_header *hdr, size_t avail);

/*
 * A cursor over one frame's body. Every read checks the declared length against
 * the bytes left before touching them; a failed read sets `error` and leaves the
 * cursor unusable (later reads fail too), so callers can check once at the end.
 */
struct proto_reader {
    const uint8_t *pos;
    size_t left;
    const char *error; /* NULL while all reads succeeded; else points to msg */
    char msg[96];      /* the first failure's reason, with the offending numbers */
};

void proto_reader_init(struct proto_reader *r, const uint8_t *body, size_t len);
bool proto_read_i32(struct proto_reader *r, int32_t *out);
/* A [string]: the view points into the body (no copy). */
bool proto_read_str(struct proto_reader *r, struct str *out);
/* A count of items each at least min_item_size bytes long: rejects negative
 * counts and counts that cannot fit in the bytes left. */
bool proto_read_count(struct proto_reader *r, size_t min_item_size, uint32_t *out);
/* True when every byte was consumed and no read failed; else sets error. */
bool proto_reader_done(struct proto_reader *r);

/*
 * NEW_BETS body -> bets. Each map must hold exactly the six keys AGENCIA,
 * NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO and NUMERO, in any order; AGENCIA and
 * NUMERO are parsed as integers. The bets' strings point into `body`, which must
 * outlive them. This checks structure only; bet_validate() checks values.
 * Returns false with a reason in err (e.g. "bet 3: missing key NUMERO").
 */
bool proto_decode_new_bets(const uint8_t *body, size_t len, struct bet_batch *out, char *err,
                           size_t errlen);
/* FINISHED body: exactly one [int]. */
bool proto_decode_finished(const uint8_t *body, size_t len, int32_t *agency, char *err,
                           size_t errlen);
/* WINNERS body: [int count] then count [string]s, each passed to fn (if not NULL)
 * as a view into body. Returns false on a malformed body. */
bool proto_decode_winners(const uint8_t *body, size_t len, uint32_t *count,
                          void (*fn)(void *ctx, struct str document), void *ctx, char *err,
                          size_t errlen);

/* Encoders append whole frames to `out`. */
void proto_encode_frame(struct buf *out, uint8_t opcode, const void *body, size_t len);
void proto_encode_finished(struct buf *out, int32_t agency);
void proto_encode_winners(struct buf *out, const struct str *documents, size_t count);

/*
 * NEW_BETS is built incrementally so a sender can stop before a size limit:
 * begin, then add bets (proto_bet_encoded_size tells each one's size in
 * advance), then end, which patches the frame length and the count.
 */
size_t proto_new_bets_begin(struct buf *out); /* returns the frame's offset */
size_t proto_bet_encoded_size(const struct bet *bet);
void proto_new_bets_add(struct buf *out, const struct bet *bet);
void proto_new_bets_end(struct buf *out, size_t frame_offset, uint32_t count);

#endif
