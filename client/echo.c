/* Echo mode: one ECHO frame at a time, paced by a timer. */
#include "echo.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp0/buf.h"
#include "tp0/evframe.h"
#include "tp0/log.h"
#include "tp0/protocol.h"
#include "tp0/util.h"

struct echo {
    struct event_base *base;
    const struct client_config *cfg;
    session_done_fn done;
    void *done_ctx;
    struct bufferevent *bev;
    struct event *timer; /* loop.period between an echo and the next message */
    int64_t next;        /* number of the message to send or being waited for */
    bool waiting;        /* a message is out and its echo has not come back */
    struct buf sent;     /* body of the message being waited for */
    struct buf out;      /* encoding scratch */
};

static void echo_close(struct echo *e)
{
    if (e->timer != NULL) {
        (void)evtimer_del(e->timer); /* only a broken event base fails here */
    }
    if (e->bev != NULL) {
        bufferevent_free(e->bev);
        e->bev = NULL;
        log_action(LOG_INFO, "close_connection", "success");
    }
}

static void echo_fail(struct echo *e, const char *reason)
{
    struct log_line l;
    log_line_begin(&l, LOG_ERROR, "receive_message", "fail");
    log_line_int(&l, "client_id", e->cfg->id);
    log_line_cstr(&l, "error", reason);
    log_line_end(&l);
    echo_close(e);
    e->done(e->done_ctx, 1);
}

static void echo_finish(struct echo *e)
{
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "loop_finished", "success");
    log_line_int(&l, "client_id", e->cfg->id);
    log_line_end(&l);
    echo_close(e);
    e->done(e->done_ctx, 0);
}

static void echo_send(struct echo *e)
{
    char body[64];
    /* N° in UTF-8: U+00B0 is 0xC2 0xB0. */
    int n = snprintf(body, sizeof(body), "[CLIENT %" PRId32 "] Message N\xc2\xb0%" PRId64,
                     e->cfg->id, e->next);
    if (n < 0 || (size_t)n >= sizeof(body)) {
        echo_fail(e, "cannot format the message");
        return;
    }
    buf_reset(&e->sent);
    buf_append(&e->sent, body, (size_t)n);
    buf_reset(&e->out);
    proto_encode_frame(&e->out, OP_ECHO, e->sent.data, e->sent.len);
    if (bufferevent_write(e->bev, e->out.data, e->out.len) != 0) {
        echo_fail(e, "cannot queue the message");
        return;
    }
    e->waiting = true;
}

static void period_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    echo_send(arg);
}

/* Handles one echoed frame; returns false once the session is over. */
static bool handle_frame(struct echo *e, const struct frame_header *hdr, const uint8_t *body)
{
    if (!e->waiting) {
        echo_fail(e, "unexpected frame from the server");
        return false;
    }
    if (hdr->opcode != OP_ECHO) {
        char why[64];
        (void)snprintf(why, sizeof(why), "expected ECHO, got %s", opcode_name(hdr->opcode));
        echo_fail(e, why);
        return false;
    }
    if (hdr->body_len != e->sent.len ||
        (e->sent.len > 0 && memcmp(body, e->sent.data, e->sent.len) != 0)) {
        echo_fail(e, "the echo differs from the message sent");
        return false;
    }
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "receive_message", "success");
    log_line_int(&l, "client_id", e->cfg->id);
    log_line_str(&l, "msg", str_make((const char *)body, hdr->body_len));
    log_line_end(&l);
    e->waiting = false;
    if (e->next >= e->cfg->loop_amount) {
        echo_finish(e);
        return false;
    }
    e->next++;
    int64_t ns = e->cfg->loop_period_ns;
    struct timeval tv = {.tv_sec = (time_t)(ns / NS_PER_SEC),
                         .tv_usec = (suseconds_t)(ns % NS_PER_SEC / 1000)};
    if (evtimer_add(e->timer, &tv) != 0) {
        echo_fail(e, "cannot schedule the next message");
        return false;
    }
    return true;
}

static void echo_read_cb(struct bufferevent *bev, void *arg)
{
    struct echo *e = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        struct frame_header hdr;
        const uint8_t *frame = NULL;
        const char *reason = NULL;
        enum proto_status st = evframe_peek(in, PROTO_DEFAULT_MAX_BODY, &hdr, &frame, &reason);
        if (st == PROTO_NEED_MORE) {
            return;
        }
        if (st == PROTO_ERROR) {
            echo_fail(e, reason);
            return;
        }
        bool go_on = handle_frame(e, &hdr, frame + PROTO_HEADER_LEN);
        if (!go_on) {
            return; /* the bufferevent is gone */
        }
        evframe_drop(in, &hdr);
    }
}

static void echo_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    echo_fail(arg, bev_error_reason(what));
}

struct echo *echo_new(struct event_base *base, const struct client_config *cfg,
                      session_done_fn done, void *ctx)
{
    struct echo *e = xcalloc(1, sizeof(*e));
    e->base = base;
    e->cfg = cfg;
    e->done = done;
    e->done_ctx = ctx;
    e->next = 1;
    buf_init(&e->sent);
    buf_init(&e->out);
    e->timer = evtimer_new(base, period_cb, e);
    if (e->timer == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

void echo_start(struct echo *e, struct bufferevent *bev)
{
    e->bev = bev;
    bufferevent_setcb(bev, echo_read_cb, NULL, echo_event_cb, e);
    if (bufferevent_enable(bev, EV_READ) != 0) {
        echo_fail(e, "cannot read from the connection");
        return;
    }
    if (e->cfg->loop_amount == 0) {
        echo_finish(e);
        return;
    }
    echo_send(e);
}

void echo_stop(struct echo *e)
{
    echo_close(e);
}

void echo_free(struct echo *e)
{
    if (e == NULL) {
        return;
    }
    echo_close(e);
    event_free(e->timer);
    buf_free(&e->sent);
    buf_free(&e->out);
    free(e);
}
