/* Unit tests of the wire codec: exact bytes, every split point, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tp0/protocol.h"

/* ---- helpers building bodies by hand, independent of the encoder ---- */

static void put_i32(struct buf *b, int32_t v)
{
    buf_append_u32le(b, (uint32_t)v);
}

static void put_str(struct buf *b, const char *s)
{
    size_t len = strlen(s);
    put_i32(b, (int32_t)len);
    buf_append(b, s, len);
}

static void put_pair(struct buf *b, const char *k, const char *v)
{
    put_str(b, k);
    put_str(b, v);
}

/* A well-formed map with the given NUMERO; keys in a scrambled order. */
static void put_bet_map(struct buf *b, const char *numero)
{
    put_i32(b, 6);
    put_pair(b, "NUMERO", numero);
    put_pair(b, "NOMBRE", "Ana");
    put_pair(b, "AGENCIA", "3");
    put_pair(b, "NACIMIENTO", "2000-01-02");
    put_pair(b, "DOCUMENTO", "123");
    put_pair(b, "APELLIDO", "Paz");
}

static struct bet make_bet(int32_t agency, const char *first, const char *last, const char *doc,
                           const char *date, int32_t number)
{
    struct bet b = {
        .agency = agency,
        .first_name = str_make(first, strlen(first)),
        .last_name = str_make(last, strlen(last)),
        .document = str_make(doc, strlen(doc)),
        .birthdate = str_make(date, strlen(date)),
        .number = number,
    };
    return b;
}

static void assert_str_eq(struct str s, const char *expected)
{
    size_t len = strlen(expected);
    assert_int_equal(s.len, len);
    assert_memory_equal(s.ptr, expected, len);
}

static void assert_bet_eq(const struct bet *a, const struct bet *b)
{
    assert_int_equal(a->agency, b->agency);
    assert_int_equal(a->number, b->number);
    assert_int_equal(a->first_name.len, b->first_name.len);
    assert_memory_equal(a->first_name.ptr, b->first_name.ptr, a->first_name.len);
    assert_int_equal(a->last_name.len, b->last_name.len);
    assert_memory_equal(a->last_name.ptr, b->last_name.ptr, a->last_name.len);
    assert_int_equal(a->document.len, b->document.len);
    assert_memory_equal(a->document.ptr, b->document.ptr, a->document.len);
    assert_int_equal(a->birthdate.len, b->birthdate.len);
    assert_memory_equal(a->birthdate.ptr, b->birthdate.ptr, a->birthdate.len);
}

/* Decodes a NEW_BETS body expecting failure with exactly `expected`. */
static void expect_new_bets_error(const struct buf *body, const char *expected)
{
    struct bet_batch batch;
    char err[256] = "";
    bet_batch_init(&batch);
    assert_false(proto_decode_new_bets(body->data, body->len, &batch, err, sizeof(err)));
    assert_string_equal(err, expected);
    bet_batch_free(&batch);
}

static const struct bet sample_bets[] = {
    {1, STR_LIT("Santiago Lionel"), STR_LIT("Lorca"), STR_LIT("30904465"), STR_LIT("1999-03-17"),
     7574},
    {5, STR_LIT("Ana, María"), STR_LIT("O'Brien \"Tito\" 🎲"), STR_LIT("2147483647"),
     STR_LIT("2024-02-29"), 0},
    {2147483647, STR_LIT(""), STR_LIT("x"), STR_LIT(""), STR_LIT(""), -2147483647 - 1},
};
#define NSAMPLES (sizeof(sample_bets) / sizeof(sample_bets[0]))

static void encode_samples(struct buf *out)
{
    size_t off = proto_new_bets_begin(out);
    for (size_t i = 0; i < NSAMPLES; i++) {
        proto_new_bets_add(out, &sample_bets[i]);
    }
    proto_new_bets_end(out, off, NSAMPLES);
}

/* ---- exact bytes ---- */

static void test_opcode_names(void **state)
{
    (void)state;
    assert_string_equal(opcode_name(OP_NEW_BETS), "NEW_BETS");
    assert_string_equal(opcode_name(OP_BETS_RECV_SUCCESS), "BETS_RECV_SUCCESS");
    assert_string_equal(opcode_name(OP_BETS_RECV_FAIL), "BETS_RECV_FAIL");
    assert_string_equal(opcode_name(OP_FINISHED), "FINISHED");
    assert_string_equal(opcode_name(OP_WINNERS), "WINNERS");
    assert_string_equal(opcode_name(OP_ECHO), "ECHO");
    assert_string_equal(opcode_name(6), "UNKNOWN");
    assert_string_equal(opcode_name(255), "UNKNOWN");
}

static void test_encode_frame_bytes(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    proto_encode_frame(&b, OP_ECHO, "hi", 2);
    proto_encode_frame(&b, OP_BETS_RECV_SUCCESS, NULL, 0);
    proto_encode_finished(&b, 3);
    proto_encode_finished(&b, -2);
    static const uint8_t expected[] = {
        5, 2, 0, 0, 0, 'h',  'i',              /* ECHO "hi" */
        1, 0, 0, 0, 0,                         /* BETS_RECV_SUCCESS */
        3, 4, 0, 0, 0, 3,    0,    0,    0,    /* FINISHED 3 */
        3, 4, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, /* FINISHED -2 */
    };
    assert_int_equal(b.len, sizeof(expected));
    assert_memory_equal(b.data, expected, sizeof(expected));
    buf_free(&b);
}

static void test_encode_winners_bytes(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    struct str docs[] = {STR_LIT("12"), STR_LIT("345")};
    proto_encode_winners(&b, docs, 2);
    proto_encode_winners(&b, NULL, 0);
    static const uint8_t expected[] = {
        4, 17, 0, 0,   0,   2,   0, 0, 0, 2, 0, 0, 0, '1', '2', 3,
        0, 0,  0, '3', '4', '5', 4, 4, 0, 0, 0, 0, 0, 0,   0,
    };
    assert_int_equal(b.len, sizeof(expected));
    assert_memory_equal(b.data, expected, sizeof(expected));
    buf_free(&b);
}

static void test_encode_new_bets_bytes(void **state)
{
    (void)state;
    struct buf got = BUF_INIT, want = BUF_INIT;
    struct bet bet = make_bet(3, "Ana", "Paz", "123", "2000-01-02", -7);
    size_t off = proto_new_bets_begin(&got);
    proto_new_bets_add(&got, &bet);
    proto_new_bets_end(&got, off, 1);

    /* The documented layout, built by hand: keys in the encoder's fixed order. */
    put_i32(&want, 1);
    put_i32(&want, 6);
    put_pair(&want, "AGENCIA", "3");
    put_pair(&want, "NOMBRE", "Ana");
    put_pair(&want, "APELLIDO", "Paz");
    put_pair(&want, "DOCUMENTO", "123");
    put_pair(&want, "NACIMIENTO", "2000-01-02");
    put_pair(&want, "NUMERO", "-7");

    assert_int_equal(got.len, PROTO_HEADER_LEN + want.len);
    assert_int_equal(got.data[0], OP_NEW_BETS);
    assert_int_equal(got.data[1], (uint8_t)want.len);
    assert_int_equal(got.data[2], 0);
    assert_int_equal(got.data[3], 0);
    assert_int_equal(got.data[4], 0);
    assert_memory_equal(got.data + PROTO_HEADER_LEN, want.data, want.len);
    buf_free(&got);
    buf_free(&want);
}

static void test_new_bets_begin_at_offset(void **state)
{
    (void)state;
    /* A frame appended after other bytes patches its own header, not the buffer's start. */
    struct buf b = BUF_INIT;
    buf_append(&b, "xyz", 3);
    size_t off = proto_new_bets_begin(&b);
    assert_int_equal(off, 3);
    proto_new_bets_end(&b, off, 0);
    static const uint8_t expected[] = {'x', 'y', 'z', 0, 4, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(b.len, sizeof(expected));
    assert_memory_equal(b.data, expected, sizeof(expected));
    buf_free(&b);
}

static void test_encoded_size_exact(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    size_t off = proto_new_bets_begin(&b);
    for (size_t i = 0; i < NSAMPLES; i++) {
        size_t before = b.len;
        proto_new_bets_add(&b, &sample_bets[i]);
        assert_int_equal(b.len - before, proto_bet_encoded_size(&sample_bets[i]));
    }
    struct bet extremes[] = {
        make_bet(0, "a", "b", "c", "d", 0),
        make_bet(-1, "", "", "", "", -1),
        make_bet(9, "", "", "", "", 10),
        make_bet(10, "", "", "", "", 99),
        make_bet(-2147483647 - 1, "", "", "", "", 2147483647),
    };
    for (size_t i = 0; i < sizeof(extremes) / sizeof(extremes[0]); i++) {
        size_t before = b.len;
        proto_new_bets_add(&b, &extremes[i]);
        assert_int_equal(b.len - before, proto_bet_encoded_size(&extremes[i]));
    }
    proto_new_bets_end(&b, off, 0);
    /* The smallest map: count, six keys (46 bytes), 12 length prefixes, "0" twice. */
    struct bet zero = make_bet(0, "", "", "", "", 0);
    assert_int_equal(proto_bet_encoded_size(&zero), 4 + 46 + 12 * 4 + 2);
    buf_free(&b);
}

/* ---- round trips ---- */

static void test_new_bets_round_trip(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    encode_samples(&b);
    struct frame_header hdr;
    const char *reason = NULL;
    assert_int_equal(proto_parse_header(b.data, b.len, PROTO_DEFAULT_MAX_BODY, &hdr, &reason),
                     PROTO_OK);
    assert_int_equal(hdr.opcode, OP_NEW_BETS);
    assert_int_equal(hdr.body_len, b.len - PROTO_HEADER_LEN);
    assert_true(proto_frame_complete(&hdr, b.len));

    struct bet_batch batch;
    bet_batch_init(&batch);
    char err[256] = "";
    assert_true(
        proto_decode_new_bets(b.data + PROTO_HEADER_LEN, hdr.body_len, &batch, err, sizeof(err)));
    assert_int_equal(batch.count, NSAMPLES);
    for (size_t i = 0; i < NSAMPLES; i++) {
        assert_bet_eq(&batch.bets[i], &sample_bets[i]);
        /* Views into the body, not copies. */
        assert_true((const uint8_t *)batch.bets[i].first_name.ptr >= b.data &&
                    (const uint8_t *)batch.bets[i].first_name.ptr <= b.data + b.len);
    }

    /* The batch is reused: decoding again resets the count and keeps the array. */
    struct bet *array = batch.bets;
    size_t cap = batch.cap;
    assert_true(
        proto_decode_new_bets(b.data + PROTO_HEADER_LEN, hdr.body_len, &batch, err, sizeof(err)));
    assert_int_equal(batch.count, NSAMPLES);
    assert_ptr_equal(batch.bets, array);
    assert_int_equal(batch.cap, cap);
    bet_batch_free(&batch);
    buf_free(&b);
}

static void test_new_bets_any_key_order(void **state)
{
    (void)state;
    struct buf body = BUF_INIT;
    put_i32(&body, 2);
    put_bet_map(&body, "7574");
    put_bet_map(&body, "-12");
    struct bet_batch batch;
    bet_batch_init(&batch);
    char err[256] = "";
    assert_true(proto_decode_new_bets(body.data, body.len, &batch, err, sizeof(err)));
    assert_int_equal(batch.count, 2);
    struct bet want = make_bet(3, "Ana", "Paz", "123", "2000-01-02", 7574);
    assert_bet_eq(&batch.bets[0], &want);
    want.number = -12;
    assert_bet_eq(&batch.bets[1], &want);
    bet_batch_free(&batch);
    buf_free(&body);
}

static void test_new_bets_empty_and_large_batch(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    size_t off = proto_new_bets_begin(&b);
    proto_new_bets_end(&b, off, 0);
    struct bet_batch batch;
    bet_batch_init(&batch);
    char err[256] = "";
    assert_true(proto_decode_new_bets(b.data + PROTO_HEADER_LEN, b.len - PROTO_HEADER_LEN, &batch,
                                      err, sizeof(err)));
    assert_int_equal(batch.count, 0);

    /* 1000 bets: the batch array grows past its first allocation. */
    buf_reset(&b);
    off = proto_new_bets_begin(&b);
    for (int i = 0; i < 1000; i++) {
        struct bet bet = sample_bets[0];
        bet.number = i;
        proto_new_bets_add(&b, &bet);
    }
    proto_new_bets_end(&b, off, 1000);
    assert_true(proto_decode_new_bets(b.data + PROTO_HEADER_LEN, b.len - PROTO_HEADER_LEN, &batch,
                                      err, sizeof(err)));
    assert_int_equal(batch.count, 1000);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(batch.bets[i].number, i);
    }
    bet_batch_free(&batch);
    buf_free(&b);
}

static void collect_doc(void *ctx, struct str doc)
{
    struct buf *out = ctx;
    buf_append(out, doc.ptr, doc.len);
    buf_append_byte(out, ';');
}

static void test_winners_round_trip(void **state)
{
    (void)state;
    struct buf b = BUF_INIT, seen = BUF_INIT;
    struct str docs[] = {STR_LIT("30904465"), STR_LIT(""), STR_LIT("1")};
    proto_encode_winners(&b, docs, 3);
    uint32_t count = 99;
    char err[256] = "";
    assert_true(proto_decode_winners(b.data + PROTO_HEADER_LEN, b.len - PROTO_HEADER_LEN, &count,
                                     collect_doc, &seen, err, sizeof(err)));
    assert_int_equal(count, 3);
    assert_int_equal(seen.len, strlen("30904465;;1;"));
    assert_memory_equal(seen.data, "30904465;;1;", seen.len);
    /* fn may be NULL: only the count is wanted. */
    assert_true(proto_decode_winners(b.data + PROTO_HEADER_LEN, b.len - PROTO_HEADER_LEN, &count,
                                     NULL, NULL, err, sizeof(err)));
    assert_int_equal(count, 3);
    buf_free(&b);
    buf_free(&seen);
}

static void test_finished_round_trip(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    proto_encode_finished(&b, 2147483647);
    int32_t agency = 0;
    char err[256] = "";
    assert_true(proto_decode_finished(b.data + PROTO_HEADER_LEN, b.len - PROTO_HEADER_LEN, &agency,
                                      err, sizeof(err)));
    assert_int_equal(agency, 2147483647);
    buf_free(&b);
}

/* ---- incremental decoding ---- */

static void test_header_every_split_point(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    encode_samples(&b);
    uint32_t body_len = (uint32_t)(b.len - PROTO_HEADER_LEN);
    for (size_t k = 0; k <= b.len; k++) {
        /* Copy the prefix into an exactly sized allocation so ASan catches any over-read. */
        uint8_t *prefix = malloc(k ? k : 1);
        assert_non_null(prefix);
        memcpy(prefix, b.data, k);
        struct frame_header hdr = {0xaa, 0xdeadbeef};
        const char *reason = NULL;
        enum proto_status st = proto_parse_header(prefix, k, PROTO_DEFAULT_MAX_BODY, &hdr, &reason);
        if (k < PROTO_HEADER_LEN) {
            assert_int_equal(st, PROTO_NEED_MORE);
        } else {
            assert_int_equal(st, PROTO_OK);
            assert_int_equal(hdr.opcode, OP_NEW_BETS);
            assert_int_equal(hdr.body_len, body_len);
            assert_int_equal(proto_frame_complete(&hdr, k), k == b.len);
        }
        free(prefix);
    }
    buf_free(&b);
}

/* Pulls every complete frame out of a stream buffer, like a read callback would. */
struct stream {
    struct buf in;
    size_t frames;
    struct bet_batch batch;
    size_t bets;
    uint8_t opcodes[8];
};

static void drain(struct stream *s)
{
    for (;;) {
        struct frame_header hdr;
        const char *reason = NULL;
        enum proto_status st =
            proto_parse_header(s->in.data, s->in.len, PROTO_DEFAULT_MAX_BODY, &hdr, &reason);
        assert_int_not_equal(st, PROTO_ERROR);
        if (st == PROTO_NEED_MORE || !proto_frame_complete(&hdr, s->in.len)) {
            return;
        }
        assert_true(s->frames < sizeof(s->opcodes));
        s->opcodes[s->frames++] = hdr.opcode;
        if (hdr.opcode == OP_NEW_BETS) {
            char err[256] = "";
            assert_true(proto_decode_new_bets(s->in.data + PROTO_HEADER_LEN, hdr.body_len,
                                              &s->batch, err, sizeof(err)));
            for (size_t i = 0; i < s->batch.count; i++) {
                assert_bet_eq(&s->batch.bets[i], &sample_bets[i]);
            }
            s->bets += s->batch.count;
        }
        size_t used = PROTO_HEADER_LEN + hdr.body_len;
        memmove(s->in.data, s->in.data + used, s->in.len - used);
        s->in.len -= used;
    }
}

static void feed_in_chunks(const struct buf *wire, size_t chunk)
{
    struct stream s = {BUF_INIT, 0, {NULL, 0, 0}, 0, {0}};
    for (size_t pos = 0; pos < wire->len; pos += chunk) {
        size_t n = wire->len - pos < chunk ? wire->len - pos : chunk;
        buf_append(&s.in, wire->data + pos, n);
        drain(&s);
    }
    assert_int_equal(s.frames, 4);
    assert_int_equal(s.opcodes[0], OP_NEW_BETS);
    assert_int_equal(s.opcodes[1], OP_ECHO);
    assert_int_equal(s.opcodes[2], OP_NEW_BETS);
    assert_int_equal(s.opcodes[3], OP_FINISHED);
    assert_int_equal(s.bets, 2 * NSAMPLES);
    assert_int_equal(s.in.len, 0);
    bet_batch_free(&s.batch);
    buf_free(&s.in);
}

static void test_stream_byte_at_a_time_and_all_chunk_sizes(void **state)
{
    (void)state;
    struct buf wire = BUF_INIT;
    encode_samples(&wire);
    proto_encode_frame(&wire, OP_ECHO, "ping", 4);
    encode_samples(&wire);
    proto_encode_finished(&wire, 4);
    for (size_t chunk = 1; chunk <= wire.len; chunk++) {
        feed_in_chunks(&wire, chunk);
    }
    buf_free(&wire);
}

static void test_two_frames_split_everywhere(void **state)
{
    (void)state;
    /* Two segments cut at every possible point: the frames come out the same. */
    struct buf wire = BUF_INIT;
    encode_samples(&wire);
    proto_encode_frame(&wire, OP_ECHO, "ping", 4);
    encode_samples(&wire);
    proto_encode_finished(&wire, 4);
    for (size_t cut = 0; cut <= wire.len; cut++) {
        struct stream s = {BUF_INIT, 0, {NULL, 0, 0}, 0, {0}};
        buf_append(&s.in, wire.data, cut);
        drain(&s);
        buf_append(&s.in, wire.data + cut, wire.len - cut);
        drain(&s);
        assert_int_equal(s.frames, 4);
        assert_int_equal(s.in.len, 0);
        bet_batch_free(&s.batch);
        buf_free(&s.in);
    }
    buf_free(&wire);
}

/* ---- malformed frames ---- */

static void expect_header_error(const uint8_t hdr_bytes[5], uint32_t cap, const char *expected)
{
    struct frame_header hdr;
    const char *reason = NULL;
    assert_int_equal(proto_parse_header(hdr_bytes, 5, cap, &hdr, &reason), PROTO_ERROR);
    assert_non_null(reason);
    assert_string_equal(reason, expected);
}

static void test_header_errors(void **state)
{
    (void)state;
    static const uint8_t neg[] = {0, 0xff, 0xff, 0xff, 0xff};
    expect_header_error(neg, PROTO_DEFAULT_MAX_BODY, "frame length -1 is negative");
    static const uint8_t most_neg[] = {5, 0, 0, 0, 0x80};
    expect_header_error(most_neg, PROTO_DEFAULT_MAX_BODY, "frame length -2147483648 is negative");
    static const uint8_t huge[] = {0, 0xff, 0xff, 0xff, 0x7f};
    expect_header_error(huge, PROTO_DEFAULT_MAX_BODY,
                        "frame length 2147483647 exceeds the cap of 1048576");
    static const uint8_t over[] = {4, 0x01, 0x00, 0x10, 0x00}; /* 1 MiB + 1 */
    expect_header_error(over, PROTO_DEFAULT_MAX_BODY,
                        "frame length 1048577 exceeds the cap of 1048576");
    static const uint8_t small_cap[] = {3, 9, 0, 0, 0};
    expect_header_error(small_cap, 8, "frame length 9 exceeds the cap of 8");
    static const uint8_t unknown6[] = {6, 0, 0, 0, 0};
    expect_header_error(unknown6, PROTO_DEFAULT_MAX_BODY, "unknown opcode 6");
    static const uint8_t unknown255[] = {255, 0xff, 0xff, 0xff, 0xff};
    expect_header_error(unknown255, PROTO_DEFAULT_MAX_BODY, "unknown opcode 255");

    /* Exactly at the cap is fine; the error is known before any body byte arrives. */
    static const uint8_t at_cap[] = {5, 0x00, 0x00, 0x10, 0x00};
    struct frame_header hdr;
    const char *reason = NULL;
    assert_int_equal(proto_parse_header(at_cap, 5, PROTO_DEFAULT_MAX_BODY, &hdr, &reason),
                     PROTO_OK);
    assert_int_equal(hdr.body_len, 1048576);
    assert_false(proto_frame_complete(&hdr, 5 + 1048575));
    assert_true(proto_frame_complete(&hdr, 5 + 1048576));
    /* Fewer than five bytes: never an error, even when the opcode is already bad. */
    assert_int_equal(proto_parse_header(unknown6, 4, PROTO_DEFAULT_MAX_BODY, &hdr, &reason),
                     PROTO_NEED_MORE);
    assert_int_equal(proto_parse_header(NULL, 0, PROTO_DEFAULT_MAX_BODY, &hdr, &reason),
                     PROTO_NEED_MORE);
}

static void test_short_body_is_not_complete(void **state)
{
    (void)state;
    struct frame_header hdr = {OP_ECHO, 10};
    assert_false(proto_frame_complete(&hdr, 0));
    assert_false(proto_frame_complete(&hdr, 4));
    assert_false(proto_frame_complete(&hdr, 14));
    assert_true(proto_frame_complete(&hdr, 15));
    assert_true(proto_frame_complete(&hdr, 100));
}

static void test_new_bets_truncated_everywhere(void **state)
{
    (void)state;
    /* Every strict prefix of a valid body fails cleanly (and never reads past it). */
    struct buf b = BUF_INIT;
    encode_samples(&b);
    const uint8_t *body = b.data + PROTO_HEADER_LEN;
    size_t len = b.len - PROTO_HEADER_LEN;
    struct bet_batch batch;
    bet_batch_init(&batch);
    for (size_t k = 0; k < len; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        assert_non_null(copy);
        memcpy(copy, body, k);
        char err[256] = "";
        assert_false(proto_decode_new_bets(copy, k, &batch, err, sizeof(err)));
        assert_true(strlen(err) > 0);
        free(copy);
    }
    bet_batch_free(&batch);
    buf_free(&b);
}

static void test_new_bets_string_past_end(void **state)
{
    (void)state;
    /* count(4) + m(4) + "AGENCIA"(4 + 7) + declared length 99 + 12 bytes: too short
     * for even one bet, so the count check catches it first. */
    struct buf body = BUF_INIT;
    put_i32(&body, 1);
    put_i32(&body, 6);
    put_str(&body, "AGENCIA");
    put_i32(&body, 99);
    for (int i = 0; i < 12; i++) {
        buf_append_byte(&body, 'x');
    }
    expect_new_bets_error(&body, "count 1 of items of at least 98 bytes exceeds the 31 bytes left");

    /* Long enough for the count check; the value's declared length still overruns. */
    for (int i = 0; i < 67; i++) {
        buf_append_byte(&body, 'x');
    }
    expect_new_bets_error(&body, "bet 1: string length 99 exceeds the 79 bytes left");

    /* The second bet's string overruns the end of the body. */
    buf_reset(&body);
    put_i32(&body, 2);
    put_bet_map(&body, "1");
    put_i32(&body, 6);
    put_str(&body, "NOMBRE");
    put_i32(&body, 99);
    for (int i = 0; i < 86; i++) {
        buf_append_byte(&body, 'x');
    }
    expect_new_bets_error(&body, "bet 2: string length 99 exceeds the 86 bytes left");

    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 6);
    put_str(&body, "NOMBRE");
    put_i32(&body, -5);
    for (int i = 0; i < 90; i++) {
        buf_append_byte(&body, 'x');
    }
    expect_new_bets_error(&body, "bet 1: string length -5 is negative");
    buf_free(&body);
}

static void test_new_bets_key_errors(void **state)
{
    (void)state;
    struct buf body = BUF_INIT;

    /* Missing key in the second bet: five pairs. */
    put_i32(&body, 2);
    put_bet_map(&body, "1");
    put_i32(&body, 5);
    put_pair(&body, "AGENCIA", "1");
    put_pair(&body, "NOMBRE", "A");
    put_pair(&body, "APELLIDO", "B");
    put_pair(&body, "DOCUMENTO", "1");
    put_pair(&body, "NACIMIENTO", "2000-01-01");
    expect_new_bets_error(&body, "bet 2: missing key NUMERO");

    /* Duplicate key: six pairs with NOMBRE twice (so NUMERO is absent too). */
    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 6);
    put_pair(&body, "AGENCIA", "1");
    put_pair(&body, "NOMBRE", "A");
    put_pair(&body, "NOMBRE", "B");
    put_pair(&body, "APELLIDO", "B");
    put_pair(&body, "DOCUMENTO", "1");
    put_pair(&body, "NACIMIENTO", "2000-01-01");
    expect_new_bets_error(&body, "bet 1: duplicate key NOMBRE");

    /* Unknown key. */
    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 6);
    put_pair(&body, "AGENCIA", "1");
    put_pair(&body, "FOO", "A");
    put_pair(&body, "APELLIDO", "B");
    put_pair(&body, "DOCUMENTO", "1");
    put_pair(&body, "NACIMIENTO", "2000-01-01");
    put_pair(&body, "NUMERO", "1");
    expect_new_bets_error(&body, "bet 1: unknown key FOO");

    /* Keys are case-sensitive. */
    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 6);
    put_pair(&body, "agencia", "1");
    put_pair(&body, "NOMBRE", "A");
    put_pair(&body, "APELLIDO", "B");
    put_pair(&body, "DOCUMENTO", "1");
    put_pair(&body, "NACIMIENTO", "2000-01-01");
    put_pair(&body, "NUMERO", "1");
    expect_new_bets_error(&body, "bet 1: unknown key agencia");

    /* An extra (seventh) key, after all six valid ones. */
    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 7);
    put_pair(&body, "AGENCIA", "1");
    put_pair(&body, "NOMBRE", "A");
    put_pair(&body, "APELLIDO", "B");
    put_pair(&body, "DOCUMENTO", "1");
    put_pair(&body, "NACIMIENTO", "2000-01-01");
    put_pair(&body, "NUMERO", "1");
    put_pair(&body, "EXTRA", "1");
    expect_new_bets_error(&body, "bet 1: unknown key EXTRA");

    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 7);
    put_pair(&body, "AGENCIA", "1");
    put_pair(&body, "NOMBRE", "A");
    put_pair(&body, "APELLIDO", "B");
    put_pair(&body, "DOCUMENTO", "1");
    put_pair(&body, "NACIMIENTO", "2000-01-01");
    put_pair(&body, "NUMERO", "1");
    put_pair(&body, "NUMERO", "2");
    expect_new_bets_error(&body, "bet 1: duplicate key NUMERO");

    /* An empty map. */
    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 0);
    for (int i = 0; i < 94; i++) {
        buf_append_byte(&body, 0);
    }
    expect_new_bets_error(&body, "bet 1: missing key AGENCIA");

    /* A negative and a huge map size. */
    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, -1);
    for (int i = 0; i < 94; i++) {
        buf_append_byte(&body, 0);
    }
    expect_new_bets_error(&body, "bet 1: count -1 is negative");
    buf_reset(&body);
    put_i32(&body, 1);
    put_i32(&body, 2147483647);
    for (int i = 0; i < 94; i++) {
        buf_append_byte(&body, 0);
    }
    expect_new_bets_error(&body,
                          "bet 1: count 2147483647 of items of at least 8 bytes exceeds the 94 "
                          "bytes left");
    buf_free(&body);
}

static void test_new_bets_value_errors(void **state)
{
    (void)state;
    static const struct {
        const char *agencia;
        const char *numero;
        const char *expected;
    } cases[] = {
        {"x", "1", "bet 1: AGENCIA 'x' is not an integer"},
        {"", "1", "bet 1: AGENCIA '' is not an integer"},
        {" 1", "1", "bet 1: AGENCIA ' 1' is not an integer"},
        {"+1", "1", "bet 1: AGENCIA '+1' is not an integer"},
        {"2147483648", "1", "bet 1: AGENCIA 2147483648 is out of the int32 range"},
        {"1", "abc", "bet 1: NUMERO 'abc' is not an integer"},
        {"1", "7574.0", "bet 1: NUMERO '7574.0' is not an integer"},
        {"1", "2147483648", "bet 1: NUMERO 2147483648 is out of the int32 range"},
        {"1", "-2147483649", "bet 1: NUMERO -2147483649 is out of the int32 range"},
        {"1", "99999999999999999999", "bet 1: NUMERO '99999999999999999999' is not an integer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf body = BUF_INIT;
        put_i32(&body, 1);
        put_i32(&body, 6);
        put_pair(&body, "AGENCIA", cases[i].agencia);
        put_pair(&body, "NOMBRE", "A");
        put_pair(&body, "APELLIDO", "B");
        put_pair(&body, "DOCUMENTO", "1");
        put_pair(&body, "NACIMIENTO", "2000-01-01");
        put_pair(&body, "NUMERO", cases[i].numero);
        expect_new_bets_error(&body, cases[i].expected);
        buf_free(&body);
    }
}

static void test_new_bets_trailing_and_counts(void **state)
{
    (void)state;
    struct buf body = BUF_INIT;
    put_i32(&body, 1);
    put_bet_map(&body, "1");
    buf_append(&body, "abc", 3);
    expect_new_bets_error(&body, "3 trailing bytes after the last bet");

    /* Declares two bets, carries one plus padding: the second one is truncated. */
    buf_reset(&body);
    put_i32(&body, 2);
    put_bet_map(&body, "1");
    for (int i = 0; i < 110; i++) {
        buf_append_byte(&body, 0);
    }
    expect_new_bets_error(&body, "bet 2: missing key AGENCIA");

    buf_reset(&body);
    put_i32(&body, -1);
    expect_new_bets_error(&body, "count -1 is negative");

    buf_reset(&body);
    put_i32(&body, 2147483647);
    put_bet_map(&body, "1");
    char expected[128];
    snprintf(expected, sizeof(expected),
             "count 2147483647 of items of at least 98 bytes exceeds the %zu bytes left",
             body.len - 4);
    expect_new_bets_error(&body, expected);

    buf_reset(&body);
    put_i32(&body, 0x40000000); /* count * 98 would overflow 32 bits */
    expect_new_bets_error(&body,
                          "count 1073741824 of items of at least 98 bytes exceeds the 0 bytes "
                          "left");

    buf_reset(&body);
    expect_new_bets_error(&body, "int needs 4 bytes, 0 left");
    buf_append(&body, "\x01\x00", 2);
    expect_new_bets_error(&body, "int needs 4 bytes, 2 left");
    buf_free(&body);
}

static void test_finished_and_winners_errors(void **state)
{
    (void)state;
    int32_t agency;
    uint32_t count;
    char err[256];
    static const uint8_t five[] = {1, 0, 0, 0, 9};
    assert_false(proto_decode_finished(five, 3, &agency, err, sizeof(err)));
    assert_string_equal(err, "FINISHED: int needs 4 bytes, 3 left");
    assert_false(proto_decode_finished(five, 5, &agency, err, sizeof(err)));
    assert_string_equal(err, "FINISHED: 1 trailing bytes after the agency");

    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xff};
    assert_false(proto_decode_winners(neg, 4, &count, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "WINNERS: count -1 is negative");
    static const uint8_t big[] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_false(proto_decode_winners(big, sizeof(big), &count, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err,
                        "WINNERS: count 3 of items of at least 4 bytes exceeds the 8 bytes left");
    static const uint8_t past[] = {1, 0, 0, 0, 5, 0, 0, 0, 'a'};
    assert_false(proto_decode_winners(past, sizeof(past), &count, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "WINNERS: document 1: string length 5 exceeds the 1 bytes left");
    static const uint8_t trail[] = {0, 0, 0, 0, 7};
    assert_false(proto_decode_winners(trail, sizeof(trail), &count, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "WINNERS: 1 trailing bytes after the last document");
}

static void test_reader_primitives(void **state)
{
    (void)state;
    struct buf body = BUF_INIT;
    put_i32(&body, -7);
    put_str(&body, "héllo");
    put_i32(&body, 2);
    struct proto_reader r;
    proto_reader_init(&r, body.data, body.len);
    int32_t v;
    struct str s;
    uint32_t n;
    assert_true(proto_read_i32(&r, &v));
    assert_int_equal(v, -7);
    assert_true(proto_read_str(&r, &s));
    assert_str_eq(s, "héllo");
    assert_ptr_equal(s.ptr, (const char *)body.data + 8);
    assert_true(proto_read_count(&r, 0, &n));
    assert_int_equal(n, 2);
    assert_true(proto_reader_done(&r));
    assert_null(r.error);

    /* Trailing bytes. */
    proto_reader_init(&r, body.data, body.len);
    assert_true(proto_read_i32(&r, &v));
    assert_false(proto_reader_done(&r));
    assert_string_equal(r.error, "14 trailing bytes");

    /* After a failure every read fails and the first reason stays. */
    proto_reader_init(&r, body.data, 2);
    assert_false(proto_read_i32(&r, &v));
    assert_string_equal(r.error, "int needs 4 bytes, 2 left");
    assert_false(proto_read_str(&r, &s));
    assert_false(proto_read_count(&r, 1, &n));
    assert_false(proto_reader_done(&r));
    assert_string_equal(r.error, "int needs 4 bytes, 2 left");

    /* A count exactly filling the bytes left is accepted, one more is not. */
    buf_reset(&body);
    put_i32(&body, 3);
    buf_append(&body, "123456", 6);
    proto_reader_init(&r, body.data, body.len);
    assert_true(proto_read_count(&r, 2, &n));
    assert_int_equal(n, 3);
    proto_reader_init(&r, body.data, body.len);
    assert_false(proto_read_count(&r, 3, &n));
    assert_string_equal(r.error, "count 3 of items of at least 3 bytes exceeds the 6 bytes left");
    buf_free(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opcode_names),
        cmocka_unit_test(test_encode_frame_bytes),
        cmocka_unit_test(test_encode_winners_bytes),
        cmocka_unit_test(test_encode_new_bets_bytes),
        cmocka_unit_test(test_new_bets_begin_at_offset),
        cmocka_unit_test(test_encoded_size_exact),
        cmocka_unit_test(test_new_bets_round_trip),
        cmocka_unit_test(test_new_bets_any_key_order),
        cmocka_unit_test(test_new_bets_empty_and_large_batch),
        cmocka_unit_test(test_winners_round_trip),
        cmocka_unit_test(test_finished_round_trip),
        cmocka_unit_test(test_header_every_split_point),
        cmocka_unit_test(test_stream_byte_at_a_time_and_all_chunk_sizes),
        cmocka_unit_test(test_two_frames_split_everywhere),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_short_body_is_not_complete),
        cmocka_unit_test(test_new_bets_truncated_everywhere),
        cmocka_unit_test(test_new_bets_string_past_end),
        cmocka_unit_test(test_new_bets_key_errors),
        cmocka_unit_test(test_new_bets_value_errors),
        cmocka_unit_test(test_new_bets_trailing_and_counts),
        cmocka_unit_test(test_finished_and_winners_errors),
        cmocka_unit_test(test_reader_primitives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
