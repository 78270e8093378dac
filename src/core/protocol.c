/* The wire codec: pure functions over byte ranges, no I/O. */
#include "tp0/protocol.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const opcode_names[] = {
    "NEW_BETS", "BETS_RECV_SUCCESS", "BETS_RECV_FAIL", "FINISHED", "WINNERS", "ECHO",
};
#define OPCODE_MAX OP_ECHO

const char *opcode_name(uint8_t opcode)
{
    return opcode <= OPCODE_MAX ? opcode_names[opcode] : "UNKNOWN";
}

static inline uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline int32_t u32_to_i32(uint32_t u)
{
    /* Two's complement reinterpretation without implementation-defined casts. */
    return u <= INT32_MAX ? (int32_t)u : (int32_t)(u - 0x80000000u) + INT32_MIN;
}

static inline uint8_t *put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

/* ---- Frame header ---- */

enum proto_status proto_parse_header(const uint8_t *data, size_t avail, uint32_t max_body,
                                     struct frame_header *hdr, const char **reason)
{
    static _Thread_local char msg[96];
    if (avail < PROTO_HEADER_LEN) {
        return PROTO_NEED_MORE;
    }
    uint8_t op = data[0];
    int32_t len = u32_to_i32(get_u32le(data + 1));
    if (op > OPCODE_MAX) {
        snprintf(msg, sizeof(msg), "unknown opcode %u", (unsigned)op);
        *reason = msg;
        return PROTO_ERROR;
    }
    if (len < 0) {
        snprintf(msg, sizeof(msg), "frame length %ld is negative", (long)len);
        *reason = msg;
        return PROTO_ERROR;
    }
    if ((uint32_t)len > max_body) {
        snprintf(msg, sizeof(msg), "frame length %ld exceeds the cap of %lu", (long)len,
                 (unsigned long)max_body);
        *reason = msg;
        return PROTO_ERROR;
    }
    hdr->opcode = op;
    hdr->body_len = (uint32_t)len;
    return PROTO_OK;
}

bool proto_frame_complete(const struct frame_header *hdr, size_t avail)
{
    return avail >= PROTO_HEADER_LEN && avail - PROTO_HEADER_LEN >= hdr->body_len;
}

/* ---- Body reader ---- */

void proto_reader_init(struct proto_reader *r, const uint8_t *body, size_t len)
{
    r->pos = body;
    r->left = len;
    r->error = NULL;
    r->msg[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static bool reader_fail(struct proto_reader *r,
                                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* clang-tidy 14 misreads va_start here when it analyses several files at once. */
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    r->error = r->msg;
    r->left = 0;
    return false;
}

bool proto_read_i32(struct proto_reader *r, int32_t *out)
{
    if (r->error != NULL) {
        return false;
    }
    if (r->left < 4) {
        return reader_fail(r, "int needs 4 bytes, %zu left", r->left);
    }
    *out = u32_to_i32(get_u32le(r->pos));
    r->pos += 4;
    r->left -= 4;
    return true;
}

bool proto_read_str(struct proto_reader *r, struct str *out)
{
    int32_t len = 0;
    if (!proto_read_i32(r, &len)) {
        return false;
    }
    if (len < 0) {
        return reader_fail(r, "string length %ld is negative", (long)len);
    }
    if ((uint32_t)len > r->left) {
        return reader_fail(r, "string length %ld exceeds the %zu bytes left", (long)len, r->left);
    }
    out->ptr = (const char *)r->pos;
    out->len = (size_t)len;
    r->pos += len;
    r->left -= (size_t)len;
    return true;
}

bool proto_read_count(struct proto_reader *r, size_t min_item_size, uint32_t *out)
{
    int32_t n = 0;
    if (!proto_read_i32(r, &n)) {
        return false;
    }
    if (n < 0) {
        return reader_fail(r, "count %ld is negative", (long)n);
    }
    /* Division instead of n * min_item_size: no overflow whatever the count. */
    if (min_item_size > 0 && (size_t)n > r->left / min_item_size) {
        return reader_fail(r, "count %ld of items of at least %zu bytes exceeds the %zu bytes left",
                           (long)n, min_item_size, r->left);
    }
    *out = (uint32_t)n;
    return true;
}

bool proto_reader_done(struct proto_reader *r)
{
    if (r->error != NULL) {
        return false;
    }
    if (r->left != 0) {
        size_t left = r->left;
        return reader_fail(r, "%zu trailing bytes", left);
    }
    return true;
}

/* ---- NEW_BETS ---- */

enum bet_key { KEY_AGENCIA, KEY_NOMBRE, KEY_APELLIDO, KEY_DOCUMENTO, KEY_NACIMIENTO, KEY_NUMERO };

static const struct str bet_keys[PROTO_BET_KEYS] = {
    STR_LIT("AGENCIA"),   STR_LIT("NOMBRE"),     STR_LIT("APELLIDO"),
    STR_LIT("DOCUMENTO"), STR_LIT("NACIMIENTO"), STR_LIT("NUMERO"),
};
/* Total length of the six key names above. */
#define BET_KEYS_LEN (7 + 6 + 8 + 9 + 10 + 6)
/* The smallest possible encoded map: its count, six length-prefixed keys and
 * six empty values. Bounds a declared bet count against the bytes left. */
#define BET_MIN_ENCODED (4 + PROTO_BET_KEYS * 8 + BET_KEYS_LEN)

static int key_index(struct str key)
{
    /* The lengths and first letters tell the six keys apart; memcmp confirms. */
    int k;
    switch (key.len) {
    case 6:
        if (key.ptr[0] != 'N') {
            return -1;
        }
        k = key.ptr[1] == 'O' ? KEY_NOMBRE : KEY_NUMERO;
        break;
    case 7:
        k = KEY_AGENCIA;
        break;
    case 8:
        k = KEY_APELLIDO;
        break;
    case 9:
        k = KEY_DOCUMENTO;
        break;
    case 10:
        k = KEY_NACIMIENTO;
        break;
    default:
        return -1;
    }
    return memcmp(key.ptr, bet_keys[k].ptr, key.len) == 0 ? k : -1;
}

/* Shows at most this many bytes of a bad key or value in a reason. */
#define SHOW_MAX 32
#define SHOW(s)  (int)((s).len < SHOW_MAX ? (s).len : SHOW_MAX), (s).ptr

static bool parse_i32_field(struct str v, const char *key, uint32_t bet_no, int32_t *out, char *err,
                            size_t errlen)
{
    int64_t x;
    if (!str_to_i64(v, INT64_MIN, INT64_MAX, &x)) {
        snprintf(err, errlen, "bet %lu: %s '%.*s' is not an integer", (unsigned long)bet_no, key,
                 SHOW(v));
        return false;
    }
    if (x < INT32_MIN || x > INT32_MAX) {
        snprintf(err, errlen, "bet %lu: %s %.*s is out of the int32 range", (unsigned long)bet_no,
                 key, SHOW(v));
        return false;
    }
    *out = (int32_t)x;
    return true;
}

static bool decode_bet(struct proto_reader *r, uint32_t bet_no, struct bet *bet, char *err,
                       size_t errlen)
{
    uint32_t m = 0; /* initialised only to quiet GCC -O3 maybe-uninitialized */
    struct str values[PROTO_BET_KEYS];
    unsigned seen = 0;
    if (!proto_read_count(r, 8, &m)) {
        goto reader_error;
    }
    for (uint32_t i = 0; i < m; i++) {
        struct str key = {NULL, 0}, value = {NULL, 0};
        if (!proto_read_str(r, &key) || !proto_read_str(r, &value)) {
            goto reader_error;
        }
        int k = key_index(key);
        if (k < 0) {
            snprintf(err, errlen, "bet %lu: unknown key %.*s", (unsigned long)bet_no, SHOW(key));
            return false;
        }
        if (seen & (1u << k)) {
            snprintf(err, errlen, "bet %lu: duplicate key %s", (unsigned long)bet_no,
                     bet_keys[k].ptr);
            return false;
        }
        seen |= 1u << k;
        values[k] = value;
    }
    /* Six distinct known keys were required, so m == 6 exactly once none is missing. */
    for (int k = 0; k < PROTO_BET_KEYS; k++) {
        if (!(seen & (1u << k))) {
            snprintf(err, errlen, "bet %lu: missing key %s", (unsigned long)bet_no,
                     bet_keys[k].ptr);
            return false;
        }
    }
    if (!parse_i32_field(values[KEY_AGENCIA], "AGENCIA", bet_no, &bet->agency, err, errlen) ||
        !parse_i32_field(values[KEY_NUMERO], "NUMERO", bet_no, &bet->number, err, errlen)) {
        return false;
    }
    bet->first_name = values[KEY_NOMBRE];
    bet->last_name = values[KEY_APELLIDO];
    bet->document = values[KEY_DOCUMENTO];
    bet->birthdate = values[KEY_NACIMIENTO];
    return true;

reader_error:
    snprintf(err, errlen, "bet %lu: %s", (unsigned long)bet_no, r->error);
    return false;
}

bool proto_decode_new_bets(const uint8_t *body, size_t len, struct bet_batch *out, char *err,
                           size_t errlen)
{
    struct proto_reader r;
    uint32_t n = 0;
    proto_reader_init(&r, body, len);
    bet_batch_clear(out);
    if (!proto_read_count(&r, BET_MIN_ENCODED, &n)) {
        snprintf(err, errlen, "%s", r.error);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!decode_bet(&r, i + 1, bet_batch_push(out), err, errlen)) {
            return false;
        }
    }
    if (r.left != 0) {
        snprintf(err, errlen, "%zu trailing bytes after the last bet", r.left);
        return false;
    }
    return true;
}

bool proto_decode_finished(const uint8_t *body, size_t len, int32_t *agency, char *err,
                           size_t errlen)
{
    struct proto_reader r;
    proto_reader_init(&r, body, len);
    if (!proto_read_i32(&r, agency)) {
        snprintf(err, errlen, "FINISHED: %s", r.error);
        return false;
    }
    if (r.left != 0) {
        snprintf(err, errlen, "FINISHED: %zu trailing bytes after the agency", r.left);
        return false;
    }
    return true;
}

bool proto_decode_winners(const uint8_t *body, size_t len, uint32_t *count,
                          void (*fn)(void *ctx, struct str document), void *ctx, char *err,
                          size_t errlen)
{
    struct proto_reader r;
    uint32_t n = 0;
    proto_reader_init(&r, body, len);
    if (!proto_read_count(&r, 4, &n)) {
        snprintf(err, errlen, "WINNERS: %s", r.error);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct str doc = {NULL, 0};
        if (!proto_read_str(&r, &doc)) {
            snprintf(err, errlen, "WINNERS: document %lu: %s", (unsigned long)i + 1, r.error);
            return false;
        }
        if (fn != NULL) {
            fn(ctx, doc);
        }
    }
    if (r.left != 0) {
        snprintf(err, errlen, "WINNERS: %zu trailing bytes after the last document", r.left);
        return false;
    }
    *count = n;
    return true;
}

/* ---- Encoders ---- */

static void check_len(size_t len, const char *what)
{
    /* Lengths are i32 on the wire; a larger one is a caller bug, not peer input. */
    if (len > INT32_MAX) {
        fprintf(stderr, "protocol: %s of %zu bytes does not fit in a frame\n", what, len);
        abort();
    }
}

void proto_encode_frame(struct buf *out, uint8_t opcode, const void *body, size_t len)
{
    check_len(len, "body");
    uint8_t *p = buf_reserve(out, PROTO_HEADER_LEN + len);
    p[0] = opcode;
    put_u32le(p + 1, (uint32_t)len);
    if (len > 0) {
        memcpy(p + PROTO_HEADER_LEN, body, len);
    }
    out->len += PROTO_HEADER_LEN + len;
}

void proto_encode_finished(struct buf *out, int32_t agency)
{
    uint8_t body[4];
    put_u32le(body, (uint32_t)agency);
    proto_encode_frame(out, OP_FINISHED, body, sizeof(body));
}

void proto_encode_winners(struct buf *out, const struct str *documents, size_t count)
{
    size_t body_len = 4;
    for (size_t i = 0; i < count; i++) {
        check_len(documents[i].len, "document");
        body_len += 4 + documents[i].len;
        check_len(body_len, "WINNERS body");
    }
    check_len(count, "WINNERS count");
    uint8_t *p = buf_reserve(out, PROTO_HEADER_LEN + body_len);
    *p++ = OP_WINNERS;
    p = put_u32le(p, (uint32_t)body_len);
    p = put_u32le(p, (uint32_t)count);
    for (size_t i = 0; i < count; i++) {
        p = put_u32le(p, (uint32_t)documents[i].len);
        if (documents[i].len > 0) {
            memcpy(p, documents[i].ptr, documents[i].len);
        }
        p += documents[i].len;
    }
    out->len += PROTO_HEADER_LEN + body_len;
}

size_t proto_new_bets_begin(struct buf *out)
{
    size_t offset = out->len;
    uint8_t *p = buf_reserve(out, PROTO_HEADER_LEN + 4);
    p[0] = OP_NEW_BETS;
    /* Length and count are patched by proto_new_bets_end. */
    memset(p + 1, 0, PROTO_HEADER_LEN - 1 + 4);
    out->len += PROTO_HEADER_LEN + 4;
    return offset;
}

size_t proto_bet_encoded_size(const struct bet *bet)
{
    return BET_MIN_ENCODED + i64_dec_len(bet->agency) + bet->first_name.len + bet->last_name.len +
           bet->document.len + bet->birthdate.len + i64_dec_len(bet->number);
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
    p = put_u32le(p, (uint32_t)len);
    if (len > 0) {
        memcpy(p, s, len);
    }
    return p + len;
}

static uint8_t *put_key_str(uint8_t *p, enum bet_key k, struct str v)
{
    check_len(v.len, bet_keys[k].ptr);
    p = put_str(p, bet_keys[k].ptr, bet_keys[k].len);
    return put_str(p, v.ptr, v.len);
}

static uint8_t *put_key_int(uint8_t *p, enum bet_key k, int32_t v)
{
    char digits[I64_DEC_MAX];
    size_t n = fmt_i64(digits, v);
    p = put_str(p, bet_keys[k].ptr, bet_keys[k].len);
    return put_str(p, digits, n);
}

void proto_new_bets_add(struct buf *out, const struct bet *bet)
{
    size_t size = proto_bet_encoded_size(bet);
    uint8_t *start = buf_reserve(out, size);
    uint8_t *p = put_u32le(start, PROTO_BET_KEYS);
    p = put_key_int(p, KEY_AGENCIA, bet->agency);
    p = put_key_str(p, KEY_NOMBRE, bet->first_name);
    p = put_key_str(p, KEY_APELLIDO, bet->last_name);
    p = put_key_str(p, KEY_DOCUMENTO, bet->document);
    p = put_key_str(p, KEY_NACIMIENTO, bet->birthdate);
    p = put_key_int(p, KEY_NUMERO, bet->number);
    out->len += (size_t)(p - start);
}

void proto_new_bets_end(struct buf *out, size_t frame_offset, uint32_t count)
{
    size_t body_len = out->len - frame_offset - PROTO_HEADER_LEN;
    check_len(body_len, "NEW_BETS body");
    check_len(count, "NEW_BETS count");
    buf_put_u32le_at(out, frame_offset + 1, (uint32_t)body_len);
    buf_put_u32le_at(out, frame_offset + PROTO_HEADER_LEN, count);
}
