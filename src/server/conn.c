#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "tp0/evframe.h"
#include "tp0/log.h"
#include "tp0/protocol.h"
#include "tp0/storage.h"

#define REASON_LEN 1024

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short events, void *arg);
static void idle_cb(evutil_socket_t fd, short events, void *arg);

static void format_ip(const struct sockaddr *addr, char *out, size_t len)
{
    const void *src = NULL;

    if (addr != NULL && addr->sa_family == AF_INET)
        src = &((const struct sockaddr_in *)(const void *)addr)->sin_addr;
    else if (addr != NULL && addr->sa_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
    if (src == NULL || inet_ntop(addr->sa_family, src, out, (socklen_t)len) == NULL)
        snprintf(out, len, "unknown");
}

/* Logs `action: <action> | result: fail | ip: <ip> | error: <reason>`. */
static void log_conn_fail(const struct conn *c, enum log_level level, const char *action,
                          const char *reason)
{
    struct log_line l;

    log_line_begin(&l, level, action, "fail");
    log_line_cstr(&l, "ip", c->ip);
    log_line_cstr(&l, "error", reason);
    log_line_end(&l);
}

struct conn *conn_new(struct server *s, int fd, const struct sockaddr *addr)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    c->srv = s;
    format_ip(addr, c->ip, sizeof(c->ip));
    /* Replies are small frames; don't let Nagle hold one back behind another. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        log_msg(LOG_DEBUG, "TCP_NODELAY on %s: %s", c->ip, strerror(errno));

    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        (void)close(fd); /* read-only or never used: nothing to lose */
        log_conn_fail(c, LOG_ERROR, "accept_connection", "cannot create a bufferevent");
        free(c);
        return NULL;
    }
    if (s->idle_tv != NULL) {
        c->idle_ev = evtimer_new(s->base, idle_cb, c);
        if (c->idle_ev == NULL || event_add(c->idle_ev, s->idle_tv) != 0)
            goto fail;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    if (bufferevent_priority_set(c->bev, PRIO_IO) != 0 || bufferevent_enable(c->bev, EV_READ) != 0)
        goto fail;

    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;

    if (log_enabled(LOG_DEBUG)) {
        struct log_line l;

        log_line_begin(&l, LOG_DEBUG, "accept_connection", "success");
        log_line_cstr(&l, "ip", c->ip);
        log_line_end(&l);
    }
    return c;

fail:
    log_conn_fail(c, LOG_ERROR, "accept_connection", "cannot set up the connection's events");
    if (c->idle_ev != NULL)
        event_free(c->idle_ev);
    bufferevent_free(c->bev);
    free(c);
    return NULL;
}

static void pending_unlink(struct conn *c)
{
    struct server *s = c->srv;

    if (!(c->flags & CONN_PENDING))
        return;
    if (c->pending_prev != NULL)
        c->pending_prev->pending_next = c->pending_next;
    else
        s->pending = c->pending_next;
    if (c->pending_next != NULL)
        c->pending_next->pending_prev = c->pending_prev;
    c->pending_prev = c->pending_next = NULL;
    c->flags &= ~CONN_PENDING;
}

void conn_free(struct conn *c)
{
    struct server *s = c->srv;

    if ((c->flags & CONN_PARKED) && lottery_unpark(&s->lottery, c->agency, c) && !s->stopping) {
        struct log_line l;

        /* The agency stays finished; a new FINISHED from it parks again. */
        log_line_begin(&l, LOG_WARNING, "finished", "fail");
        log_line_cstr(&l, "ip", c->ip);
        log_line_int(&l, "agency", c->agency);
        log_line_cstr(&l, "error", "connection closed while waiting for the raffle");
        log_line_end(&l);
    }
    pending_unlink(c);

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;

    if (c->idle_ev != NULL)
        event_free(c->idle_ev);
    if (c->held != NULL)
        evbuffer_free(c->held);
    bufferevent_free(c->bev);
    free(c);
}

/* Bytes queued for the peer: in the output and held behind the commit. */
static size_t queued_bytes(const struct conn *c)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));

    if (c->held != NULL)
        n += evbuffer_get_length(c->held);
    return n;
}

/* A peer that does not read must not make us buffer without bound: stop
 * reading from it until its output drains to half the watermark. */
static void check_throttle(struct conn *c)
{
    size_t high = c->srv->cfg->output_high_watermark;

    if ((c->flags & CONN_THROTTLED) || queued_bytes(c) <= high)
        return;
    c->flags |= CONN_THROTTLED;
    server_check_ev(bufferevent_disable(c->bev, EV_READ), "cannot pause reading");
    /* write_cb runs once the output is down to high / 2. */
    bufferevent_setwatermark(c->bev, EV_WRITE, high / 2, 0);
    log_msg(LOG_DEBUG, "pausing reads from %s: %zu bytes queued", c->ip, queued_bytes(c));
}

void conn_send(struct conn *c, const void *data, size_t len)
{
    int rc;

    if (c->flags & CONN_PENDING)
        rc = evbuffer_add(c->held, data, len);
    else
        rc = bufferevent_write(c->bev, data, len);
    if (rc != 0) {
        log_conn_fail(c, LOG_ERROR, "send_message", "cannot queue a reply");
        conn_close_after_flush(c);
        return;
    }
    check_throttle(c);
}

void conn_hold_ack(struct conn *c)
{
    struct server *s = c->srv;
    uint8_t frame[PROTO_HEADER_LEN] = {OP_BETS_RECV_SUCCESS, 0, 0, 0, 0};

    if (!(c->flags & CONN_PENDING)) {
        if (c->held == NULL)
            c->held = evbuffer_new();
        if (c->held == NULL) {
            log_conn_fail(c, LOG_ERROR, "send_message", "cannot allocate a reply buffer");
            conn_close_after_flush(c);
            return;
        }
        c->flags |= CONN_PENDING;
        c->pending_prev = NULL;
        c->pending_next = s->pending;
        if (s->pending != NULL)
            s->pending->pending_prev = c;
        s->pending = c;
    }
    conn_send(c, frame, sizeof(frame));
    server_queue_commit(s);
}

void conn_release_held(struct conn *c)
{
    pending_unlink(c);
    if (evbuffer_get_length(c->held) > 0 && bufferevent_write_buffer(c->bev, c->held) != 0) {
        log_conn_fail(c, LOG_ERROR, "send_message", "cannot queue the held replies");
        conn_close_after_flush(c);
    }
}

void conn_close_after_flush(struct conn *c)
{
    if (c->flags & CONN_CLOSING)
        return;
    c->flags |= CONN_CLOSING;
    server_check_ev(bufferevent_disable(c->bev, EV_READ), "cannot stop reading");
    /* A peer that never reads its last reply must not keep the conn forever. */
    if (c->idle_ev != NULL)
        server_check_ev(event_add(c->idle_ev, c->srv->idle_tv), "cannot arm the idle timer");
    /* With nothing to write, no write callback will come to free it. */
    if (queued_bytes(c) == 0)
        server_schedule_reap(c->srv);
}

bool conn_reap(struct conn *c)
{
    if (!(c->flags & CONN_CLOSING) || (c->flags & CONN_PENDING))
        return false;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return false;
    if (log_enabled(LOG_DEBUG)) {
        struct log_line l;

        log_line_begin(&l, LOG_DEBUG, "close_connection", "success");
        log_line_cstr(&l, "ip", c->ip);
        log_line_end(&l);
    }
    conn_free(c);
    return true;
}

void conn_send_winners(struct conn *c, int32_t agency)
{
    struct server *s = c->srv;
    const struct lottery_winners *w = lottery_winners(&s->lottery, agency);
    struct log_line l;

    buf_reset(&s->out);
    proto_encode_winners(&s->out, w->views, w->count);
    conn_send(c, s->out.data, s->out.len);
    c->flags &= ~CONN_PARKED;

    log_line_begin(&l, LOG_INFO, "winners_sent", "success");
    log_line_cstr(&l, "ip", c->ip);
    log_line_int(&l, "agency", agency);
    log_line_int(&l, "cantidad", (int64_t)w->count);
    log_line_end(&l);
    conn_close_after_flush(c);
}

/* ---- handlers ----------------------------------------------------------- */

static void handle_echo(struct conn *c, const uint8_t *frame, size_t frame_len)
{
    struct log_line l;

    log_line_begin(&l, LOG_INFO, "receive_message", "success");
    log_line_cstr(&l, "ip", c->ip);
    log_line_str(&l, "msg",
                 str_make((const char *)frame + PROTO_HEADER_LEN, frame_len - PROTO_HEADER_LEN));
    log_line_end(&l);
    /* The answer is the identical frame, header included. */
    conn_send(c, frame, frame_len);
}

/* The count a NEW_BETS body declares, for the log of a rejected one. */
static int64_t declared_count(const uint8_t *body, size_t len)
{
    struct proto_reader r;
    int32_t n;

    proto_reader_init(&r, body, len);
    if (!proto_read_i32(&r, &n) || n < 0)
        return 0;
    return n;
}

/* Starts a line that goes behind the lines waiting for the commit, if any,
 * so the log keeps the order of the requests. */
static void log_line_begin_in_order(struct log_line *l, struct server *s, const char *action,
                                    const char *result)
{
    if (s->staged_log.len > 0)
        log_line_begin_into(l, &s->staged_log, LOG_INFO, action, result);
    else
        log_line_begin(l, LOG_INFO, action, result);
}

static void reject_bets(struct conn *c, int64_t count, const char *reason)
{
    struct server *s = c->srv;
    uint8_t frame[PROTO_HEADER_LEN] = {OP_BETS_RECV_FAIL, 0, 0, 0, 0};
    struct log_line l;

    log_line_begin_in_order(&l, s, "apuesta_recibida", "fail");
    log_line_int(&l, "cantidad", count);
    log_line_cstr(&l, "error", reason);
    log_line_end(&l);
    conn_send(c, frame, sizeof(frame));
}

static void handle_new_bets(struct conn *c, const uint8_t *body, size_t len)
{
    struct server *s = c->srv;
    struct bet_batch *batch = &s->batch;
    char reason[REASON_LEN];
    struct log_line l;

    bet_batch_clear(batch);
    if (!proto_decode_new_bets(body, len, batch, reason, sizeof(reason))) {
        reject_bets(c, declared_count(body, len), reason);
        return;
    }
    for (size_t i = 0; i < batch->count; i++) {
        const struct bet *b = &batch->bets[i];
        char why[REASON_LEN - 32];

        /* The "bet N: " prefix is formatted only on failure: an snprintf per
         * bet was a fifth of the server's instructions (bench, callgrind). */
        if (!bet_validate(b, why, sizeof(why)) ||
            !lottery_accepts_bets(&s->lottery, b->agency, why, sizeof(why))) {
            snprintf(reason, sizeof(reason), "bet %zu: %s", i + 1, why);
            reject_bets(c, (int64_t)batch->count, reason);
            return;
        }
    }

    storage_append(&s->storage, batch->bets, batch->count);
    /* The frame is drained after this returns: format the lines now, release
     * them once the batch is durable. */
    for (size_t i = 0; i < batch->count; i++) {
        log_line_begin_into(&l, &s->staged_log, LOG_INFO, "apuesta_almacenada", "success");
        log_line_str(&l, "dni", batch->bets[i].document);
        log_line_int(&l, "numero", batch->bets[i].number);
        log_line_end(&l);
    }
    log_line_begin_into(&l, &s->staged_log, LOG_INFO, "apuesta_recibida", "success");
    log_line_int(&l, "cantidad", (int64_t)batch->count);
    log_line_end(&l);
    conn_hold_ack(c);
}

static void log_finished(const struct conn *c, const char *result, int32_t agency)
{
    const struct lottery *lot = &c->srv->lottery;
    struct log_line l;

    /* After the lines of the batches sent before it (the raffle commits first). */
    log_line_begin_in_order(&l, c->srv, "finished", result);
    log_line_cstr(&l, "ip", c->ip);
    log_line_int(&l, "agency", agency);
    log_line_fmt(&l, "finished", "%ld/%ld", (long)lot->finished_count, (long)lot->agencies);
    log_line_end(&l);
}

static void handle_finished(struct conn *c, const uint8_t *body, size_t len)
{
    struct server *s = c->srv;
    char reason[REASON_LEN];
    int32_t agency;

    if (!proto_decode_finished(body, len, &agency, reason, sizeof(reason))) {
        log_conn_fail(c, LOG_WARNING, "finished", reason);
        conn_close_after_flush(c);
        return;
    }
    if (c->flags & CONN_PARKED) {
        snprintf(reason, sizeof(reason), "connection already sent FINISHED for agency %ld",
                 (long)c->agency);
        log_conn_fail(c, LOG_WARNING, "finished", reason);
        conn_close_after_flush(c);
        return;
    }

    switch (lottery_finish(&s->lottery, agency, c, reason, sizeof(reason))) {
    case LOTTERY_BAD_AGENCY:
    case LOTTERY_DUPLICATE:
        log_conn_fail(c, LOG_WARNING, "finished", reason);
        conn_close_after_flush(c);
        return;
    case LOTTERY_PARKED:
    case LOTTERY_DRAW_NOW:
        c->flags |= CONN_PARKED;
        c->agency = agency;
        /* Waiting for the other agencies is not idleness. */
        if (c->idle_ev != NULL)
            server_check_ev(event_del(c->idle_ev), "cannot disarm the idle timer");
        if (s->lottery.finished_count < s->lottery.agencies) {
            log_finished(c, "in_progress", agency);
        } else {
            log_finished(c, "success", agency);
            server_raffle(s);
        }
        return;
    case LOTTERY_ANSWER_NOW:
        log_finished(c, "success", agency);
        conn_send_winners(c, agency);
        return;
    }
}

/* A frame a client must not send, or one that cannot be read: close. */
static void protocol_error(struct conn *c, const char *reason)
{
    log_conn_fail(c, LOG_WARNING, "receive_message", reason);
    conn_close_after_flush(c);
}

static void dispatch(struct conn *c, const uint8_t *frame, const struct frame_header *hdr)
{
    const uint8_t *body = frame + PROTO_HEADER_LEN;
    char reason[128];

    switch (hdr->opcode) {
    case OP_ECHO:
        handle_echo(c, frame, PROTO_HEADER_LEN + (size_t)hdr->body_len);
        return;
    case OP_NEW_BETS:
        handle_new_bets(c, body, hdr->body_len);
        return;
    case OP_FINISHED:
        handle_finished(c, body, hdr->body_len);
        return;
    default:
        snprintf(reason, sizeof(reason), "opcode %u (%s) is not sent by clients", hdr->opcode,
                 opcode_name(hdr->opcode));
        protocol_error(c, reason);
        return;
    }
}

/* Handles every whole frame in the input. Never frees c. */
static void process_input(struct conn *c)
{
    struct server *s = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    while (!(c->flags & (CONN_CLOSING | CONN_THROTTLED))) {
        struct frame_header hdr;
        const char *reason = NULL;
        const uint8_t *frame = NULL;
        enum proto_status st = evframe_peek(in, s->cfg->max_frame_bytes, &hdr, &frame, &reason);

        if (st == PROTO_NEED_MORE)
            break;
        if (st == PROTO_ERROR) {
            protocol_error(c, reason != NULL ? reason : "bad frame header");
            break;
        }
        dispatch(c, frame, &hdr);
        evframe_drop(in, &hdr);
        if (c->idle_ev != NULL && !(c->flags & (CONN_PARKED | CONN_CLOSING)))
            server_check_ev(event_add(c->idle_ev, s->idle_tv), "cannot arm the idle timer");
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct server *s = c->srv;

    (void)bev;
    process_input(c);
    if (conn_reap(c))
        return;
    server_run_overdue(s);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    size_t high = c->srv->cfg->output_high_watermark;

    (void)bev;
    if ((c->flags & CONN_THROTTLED) && queued_bytes(c) <= high / 2) {
        c->flags &= ~CONN_THROTTLED;
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        if (!(c->flags & CONN_CLOSING)) {
            log_msg(LOG_DEBUG, "resuming reads from %s", c->ip);
            server_check_ev(bufferevent_enable(c->bev, EV_READ), "cannot resume reading");
            /* Frames that arrived before the pause get no new read event. */
            process_input(c);
        }
    }
    conn_reap(c);
}

static void event_cb(struct bufferevent *bev, short events, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (events & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();

        log_conn_fail(c, LOG_DEBUG, "close_connection", evutil_socket_error_to_string(err));
        conn_free(c);
    } else if (events & BEV_EVENT_EOF) {
        /* A peer that half-closes after its request (nc -N) still reads: an
         * ACK held for the commit, or output not yet written, goes out first. */
        if (!(c->flags & CONN_PARKED) && ((c->flags & CONN_PENDING) || queued_bytes(c) > 0)) {
            conn_close_after_flush(c);
            return;
        }
        if (log_enabled(LOG_DEBUG)) {
            struct log_line l;

            log_line_begin(&l, LOG_DEBUG, "close_connection", "success");
            log_line_cstr(&l, "ip", c->ip);
            log_line_cstr(&l, "reason", "peer closed");
            log_line_end(&l);
        }
        conn_free(c);
    }
}

static void idle_cb(evutil_socket_t fd, short events, void *arg)
{
    struct conn *c = arg;
    char reason[128];

    (void)fd;
    (void)events;
    /* Closing or throttled, the conn waits for the peer to read, not to send. */
    if (c->flags & (CONN_CLOSING | CONN_THROTTLED))
        snprintf(reason, sizeof(reason), "peer did not read its replies for %d s",
                 c->srv->cfg->idle_timeout);
    else
        snprintf(reason, sizeof(reason), "idle timeout, no whole frame for %d s",
                 c->srv->cfg->idle_timeout);
    log_conn_fail(c, LOG_INFO, "close_connection", reason);
    conn_free(c);
}
