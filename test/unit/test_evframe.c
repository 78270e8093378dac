/* evframe: whole frames out of an evbuffer, whatever the arrival pattern. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <string.h>

#include "tp0/evframe.h"

/* ECHO "hola" then BETS_RECV_SUCCESS, as they would arrive on one connection. */
static const uint8_t two_frames[] = {5, 4, 0, 0, 0, 'h', 'o', 'l', 'a', 1, 0, 0, 0, 0};

static enum proto_status peek(struct evbuffer *in, uint32_t max_body, struct frame_header *hdr,
                              const uint8_t **frame)
{
    const char *reason = NULL;
    enum proto_status st = evframe_peek(in, max_body, hdr, frame, &reason);
    if (st == PROTO_ERROR) {
        assert_non_null(reason);
    }
    return st;
}

static void test_byte_at_a_time(void **state)
{
    (void)state;
    struct evbuffer *in = evbuffer_new();
    assert_non_null(in);
    struct frame_header hdr;
    const uint8_t *frame = NULL;
    /* Each byte in its own chunk: the frame spans nine chains until pulled up. */
    for (size_t i = 0; i < 9; i++) {
        assert_int_equal(peek(in, 1024, &hdr, &frame), PROTO_NEED_MORE);
        assert_int_equal(evbuffer_add(in, &two_frames[i], 1), 0);
    }
    assert_int_equal(peek(in, 1024, &hdr, &frame), PROTO_OK);
    assert_int_equal(hdr.opcode, OP_ECHO);
    assert_int_equal(hdr.body_len, 4);
    assert_memory_equal(frame, two_frames, 9);
    evframe_drop(in, &hdr);
    assert_int_equal(evbuffer_get_length(in), 0);

    assert_int_equal(evbuffer_add(in, &two_frames[9], 5), 0);
    assert_int_equal(peek(in, 1024, &hdr, &frame), PROTO_OK);
    assert_int_equal(hdr.opcode, OP_BETS_RECV_SUCCESS);
    assert_int_equal(hdr.body_len, 0);
    evframe_drop(in, &hdr);
    assert_int_equal(peek(in, 1024, &hdr, &frame), PROTO_NEED_MORE);
    evbuffer_free(in);
}

static void test_two_frames_in_one_read(void **state)
{
    (void)state;
    struct evbuffer *in = evbuffer_new();
    assert_non_null(in);
    assert_int_equal(evbuffer_add(in, two_frames, sizeof(two_frames)), 0);
    struct frame_header hdr;
    const uint8_t *frame = NULL;
    assert_int_equal(peek(in, 1024, &hdr, &frame), PROTO_OK);
    assert_memory_equal(frame, two_frames, 9);
    evframe_drop(in, &hdr);
    /* Never reads past a frame: the second one is still whole. */
    assert_int_equal(evbuffer_get_length(in), 5);
    assert_int_equal(peek(in, 1024, &hdr, &frame), PROTO_OK);
    assert_memory_equal(frame, &two_frames[9], 5);
    evframe_drop(in, &hdr);
    evbuffer_free(in);
}

static void test_cap_checked_before_the_body(void **state)
{
    (void)state;
    struct evbuffer *in = evbuffer_new();
    assert_non_null(in);
    /* A header claiming 1 MiB + 1: an error as soon as the 5 bytes are there. */
    static const uint8_t big[] = {0, 0x01, 0x00, 0x10, 0x00};
    assert_int_equal(evbuffer_add(in, big, sizeof(big)), 0);
    struct frame_header hdr;
    const uint8_t *frame = NULL;
    assert_int_equal(peek(in, 1u << 20, &hdr, &frame), PROTO_ERROR);
    /* Negative length, unknown opcode. */
    static const uint8_t negative[] = {5, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t unknown[] = {9, 0, 0, 0, 0};
    evbuffer_free(in);
    in = evbuffer_new();
    assert_non_null(in);
    assert_int_equal(evbuffer_add(in, negative, sizeof(negative)), 0);
    assert_int_equal(peek(in, 1u << 20, &hdr, &frame), PROTO_ERROR);
    evbuffer_free(in);
    in = evbuffer_new();
    assert_non_null(in);
    assert_int_equal(evbuffer_add(in, unknown, sizeof(unknown)), 0);
    assert_int_equal(peek(in, 1u << 20, &hdr, &frame), PROTO_ERROR);
    evbuffer_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_two_frames_in_one_read),
        cmocka_unit_test(test_cap_checked_before_the_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
