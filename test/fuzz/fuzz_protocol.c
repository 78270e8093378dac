/*
 * Fuzz target: the incremental decoder as the server drives it, every message
 * decoder, bet validation, and the encoders by round trip.
 *
 * Input: byte 0 = flags (bits 0-2: how many split bytes follow; bits 3-4: the
 * error buffer size), then the split bytes (each the size of one arrival; 0 =
 * everything left), then the byte stream itself. The stream is fed three ways:
 * in the input's arrival sizes, one byte at a time and all at once; after every
 * arrival the server's loop runs (parse the header, wait for the whole frame,
 * decode it, repeat). The three must see the same frames and the same error at
 * the same offset, and the header's verdict must never change once decided.
 */
#include <string.h>

#include "fuzz.h"
#include "tp0/protocol.h"

#define FUZZ_MAX_BODY (64u * 1024u)
#define MAX_SPLITS    7

struct frame_seen {
    uint8_t opcode;
    uint32_t len;
    size_t offset;
};

struct run {
    struct frame_seen *frames;
    size_t nframes, cap;
    bool error;
    size_t error_offset; /* where the rejected header starts */
    size_t consumed;     /* bytes of whole frames */
};

/* Reused across inputs, like a server reuses its batch and output buffers. */
static struct bet_batch batch, batch2;
static struct buf enc, enc2;
static size_t errlen;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The header as a server sees it when `avail` bytes of the frame are buffered:
 * it copies out at most PROTO_HEADER_LEN bytes. They go at the end of a stack
 * array, so a read past them is a stack overflow ASan reports (and no malloc per
 * byte of the byte-at-a-time run). Checks the verdict against the rules. */
static enum proto_status header_at(const uint8_t *frame, size_t avail, struct frame_header *hdr)
{
    size_t n = avail < PROTO_HEADER_LEN ? avail : PROTO_HEADER_LEN;
    uint8_t slot[PROTO_HEADER_LEN];
    uint8_t *copy = slot + (PROTO_HEADER_LEN - n);
    if (n > 0) {
        memcpy(copy, frame, n);
    }
    const char *reason = NULL;
    memset(hdr, 0xA5, sizeof *hdr);
    enum proto_status st = proto_parse_header(copy, n, FUZZ_MAX_BODY, hdr, &reason);
    FUZZ_CHECK(st == PROTO_OK || st == PROTO_NEED_MORE || st == PROTO_ERROR);
    if (st == PROTO_ERROR) {
        FUZZ_CHECK(reason != NULL && reason[0] != '\0');
    }
    if (n < PROTO_HEADER_LEN) {
        FUZZ_CHECK(st != PROTO_OK);
    } else {
        /* The whole header is there: the verdict follows from five bytes. */
        int32_t len = (int32_t)le32(copy + 1);
        bool valid = copy[0] <= OP_ECHO && len >= 0 && (uint32_t)len <= FUZZ_MAX_BODY;
        FUZZ_CHECK(st == (valid ? PROTO_OK : PROTO_ERROR));
        if (valid) {
            FUZZ_CHECK(hdr->opcode == copy[0] && hdr->body_len == (uint32_t)len);
        }
    }
    return st;
}

static void check_complete(const struct frame_header *hdr, size_t avail)
{
    size_t whole = PROTO_HEADER_LEN + (size_t)hdr->body_len;
    FUZZ_CHECK(proto_frame_complete(hdr, avail) == (avail >= whole));
    FUZZ_CHECK(!proto_frame_complete(hdr, whole - 1));
    FUZZ_CHECK(proto_frame_complete(hdr, whole));
    FUZZ_CHECK(proto_frame_complete(hdr, SIZE_MAX));
}

static void check_bet_inside(const struct bet *b, const uint8_t *body, size_t len)
{
    FUZZ_CHECK(fuzz_inside(b->first_name.ptr, b->first_name.len, body, len));
    FUZZ_CHECK(fuzz_inside(b->last_name.ptr, b->last_name.len, body, len));
    FUZZ_CHECK(fuzz_inside(b->document.ptr, b->document.len, body, len));
    FUZZ_CHECK(fuzz_inside(b->birthdate.ptr, b->birthdate.len, body, len));
}

/* Encodes a batch as one NEW_BETS frame, checking each bet's announced size. */
static void encode_batch(struct buf *out, const struct bet_batch *b)
{
    buf_reset(out);
    size_t off = proto_new_bets_begin(out);
    FUZZ_CHECK(off == 0);
    for (size_t i = 0; i < b->count; i++) {
        size_t before = out->len;
        proto_new_bets_add(out, &b->bets[i]);
        FUZZ_CHECK(out->len - before == proto_bet_encoded_size(&b->bets[i]));
    }
    proto_new_bets_end(out, off, (uint32_t)b->count);
}

static void decode_new_bets(const uint8_t *body, size_t len)
{
    char err[256];
    memset(err, 'x', sizeof err);
    bool ok = proto_decode_new_bets(body, len, &batch, err, errlen);
    fuzz_check_err(err, errlen, !ok);
    if (!ok) {
        return;
    }
    FUZZ_CHECK(len >= 4 && batch.count == le32(body));
    for (size_t i = 0; i < batch.count; i++) {
        check_bet_inside(&batch.bets[i], body, len);
        fuzz_validate_bet(&batch.bets[i], errlen);
    }

    /* Round trip: encode what was decoded, decode that, compare; the second
     * encoding must be byte-identical to the first (a canonical form). */
    encode_batch(&enc, &batch);
    struct frame_header hdr;
    const char *reason = NULL;
    FUZZ_CHECK(proto_parse_header(enc.data, enc.len, INT32_MAX, &hdr, &reason) == PROTO_OK);
    FUZZ_CHECK(hdr.opcode == OP_NEW_BETS && PROTO_HEADER_LEN + (size_t)hdr.body_len == enc.len);
    ok = proto_decode_new_bets(enc.data + PROTO_HEADER_LEN, hdr.body_len, &batch2, err, sizeof err);
    if (!ok) {
        fprintf(stderr, "re-encoded batch rejected: %s\n", err);
    }
    FUZZ_CHECK(ok && batch2.count == batch.count);
    for (size_t i = 0; i < batch.count; i++) {
        FUZZ_CHECK(fuzz_bet_eq(&batch.bets[i], &batch2.bets[i]));
    }
    encode_batch(&enc2, &batch2);
    FUZZ_CHECK(enc2.len == enc.len && memcmp(enc2.data, enc.data, enc.len) == 0);
}

struct winners_seen {
    const uint8_t *body;
    size_t len;
    struct str docs[64];
    size_t ndocs; /* callbacks so far (docs keeps the first 64) */
};

static void winner_cb(void *ctx, struct str document)
{
    struct winners_seen *w = ctx;
    FUZZ_CHECK(fuzz_inside(document.ptr, document.len, w->body, w->len));
    fuzz_touch(document);
    if (w->ndocs < 64) {
        w->docs[w->ndocs] = document;
    }
    w->ndocs++;
}

/* A frame whose bytes are fixed by its content must re-encode identically. */
static void check_same(const struct buf *b, const uint8_t *frame, size_t len)
{
    FUZZ_CHECK(b->len == len && memcmp(b->data, frame, len) == 0);
}

static void decode_frame(const uint8_t *frame, const struct frame_header *hdr)
{
    size_t len = hdr->body_len;
    /* The body alone, in a block of exactly its size, as a decoder gets it. */
    uint8_t *body = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(body != NULL);
    if (len > 0) {
        memcpy(body, frame + PROTO_HEADER_LEN, len);
    }
    char err[256];
    struct buf out = BUF_INIT;
    switch (hdr->opcode) {
    case OP_NEW_BETS:
        decode_new_bets(body, len);
        break;
    case OP_FINISHED: {
        int32_t agency = 0;
        memset(err, 'x', sizeof err);
        bool ok = proto_decode_finished(body, len, &agency, err, errlen);
        fuzz_check_err(err, errlen, !ok);
        FUZZ_CHECK(ok == (len == 4));
        if (ok) {
            FUZZ_CHECK(agency == (int32_t)le32(body));
            proto_encode_finished(&out, agency);
            check_same(&out, frame, PROTO_HEADER_LEN + len);
        }
        break;
    }
    case OP_WINNERS: {
        struct winners_seen w = {.body = body, .len = len};
        uint32_t count = 0;
        memset(err, 'x', sizeof err);
        bool ok = proto_decode_winners(body, len, &count, winner_cb, &w, err, errlen);
        fuzz_check_err(err, errlen, !ok);
        if (ok) {
            FUZZ_CHECK(count == w.ndocs && len >= 4 && count == le32(body));
            if (count <= 64) {
                proto_encode_winners(&out, w.docs, count);
                check_same(&out, frame, PROTO_HEADER_LEN + len);
            }
            /* Without a callback the verdict is the same. */
            uint32_t count2 = 0;
            FUZZ_CHECK(proto_decode_winners(body, len, &count2, NULL, NULL, err, sizeof err));
            FUZZ_CHECK(count2 == count);
        }
        break;
    }
    default:
        /* Empty answers and ECHO: the body is opaque. */
        proto_encode_frame(&out, hdr->opcode, body, len);
        check_same(&out, frame, PROTO_HEADER_LEN + len);
        break;
    }
    buf_free(&out);
    free(body);
}

static void run_add(struct run *r, uint8_t opcode, uint32_t len, size_t offset)
{
    if (r->nframes == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->frames = xrealloc(r->frames, r->cap * sizeof *r->frames);
    }
    r->frames[r->nframes++] = (struct frame_seen){opcode, len, offset};
}

/* Feeds the stream in arrivals of the given sizes (cycled; none = all at once),
 * running the server's loop after each. */
static void feed(const uint8_t *s, size_t n, const uint8_t *sizes, size_t nsizes, bool decode,
                 struct run *r)
{
    size_t arrived = 0, consumed = 0, k = 0;
    enum proto_status decided = PROTO_NEED_MORE;
    struct frame_header dhdr = {0, 0};
    while (arrived < n && !r->error) {
        size_t chunk = nsizes > 0 ? sizes[k++ % nsizes] : 0;
        arrived += chunk == 0 || chunk > n - arrived ? n - arrived : chunk;
        for (;;) {
            size_t avail = arrived - consumed;
            struct frame_header hdr;
            enum proto_status st = header_at(s + consumed, avail, &hdr);
            if (decided != PROTO_NEED_MORE) {
                FUZZ_CHECK(st == decided);
                if (st == PROTO_OK) {
                    FUZZ_CHECK(hdr.opcode == dhdr.opcode && hdr.body_len == dhdr.body_len);
                }
            }
            decided = st;
            dhdr = hdr;
            if (st == PROTO_NEED_MORE) {
                break;
            }
            if (st == PROTO_ERROR) {
                /* The server closes here; a verdict reached early must stand
                 * whatever bytes would have followed. */
                for (size_t a = avail + 1; a <= n - consumed && a <= PROTO_HEADER_LEN; a++) {
                    FUZZ_CHECK(header_at(s + consumed, a, &hdr) == PROTO_ERROR);
                }
                r->error = true;
                r->error_offset = consumed;
                break;
            }
            check_complete(&hdr, avail);
            if (!proto_frame_complete(&hdr, avail)) {
                break;
            }
            run_add(r, hdr.opcode, hdr.body_len, consumed);
            if (decode) {
                decode_frame(s + consumed, &hdr);
            }
            consumed += PROTO_HEADER_LEN + (size_t)hdr.body_len;
            decided = PROTO_NEED_MORE;
        }
    }
    r->consumed = consumed;
}

static void same_run(const struct run *a, const struct run *b)
{
    FUZZ_CHECK(a->nframes == b->nframes && a->error == b->error && a->consumed == b->consumed);
    FUZZ_CHECK(!a->error || a->error_offset == b->error_offset);
    for (size_t i = 0; i < a->nframes; i++) {
        FUZZ_CHECK(a->frames[i].opcode == b->frames[i].opcode &&
                   a->frames[i].len == b->frames[i].len &&
                   a->frames[i].offset == b->frames[i].offset);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t nsizes = data[0] & MAX_SPLITS;
    errlen = fuzz_errlen((uint8_t)(data[0] >> 3));
    if (size < 1 + nsizes) {
        return 0;
    }
    const uint8_t *sizes = data + 1;
    const uint8_t *s = data + 1 + nsizes;
    size_t n = size - 1 - nsizes;

    static const uint8_t ops[] = {0, 1, 2, 3, 4, 5, 6, 7, 0x7F, 0xFF};
    for (size_t i = 0; i < sizeof ops; i++) {
        const char *name = opcode_name(ops[i]);
        FUZZ_CHECK(name != NULL && (ops[i] <= OP_ECHO) == (strcmp(name, "UNKNOWN") != 0));
    }

    static const uint8_t one = 1;
    struct run split = {0}, bytewise = {0}, whole = {0};
    feed(s, n, sizes, nsizes, true, &split);
    feed(s, n, &one, 1, false, &bytewise);
    feed(s, n, NULL, 0, false, &whole);
    same_run(&split, &bytewise);
    same_run(&split, &whole);
    free(split.frames);
    free(bytewise.frames);
    free(whole.frames);
    return 0;
}
