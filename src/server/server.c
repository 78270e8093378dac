#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "tp0/log.h"
#include "tp0/protocol.h"

#define ERR_LEN 512

/* Idle-priority work held back this long by a stream of reads runs inline. */
#define IDLE_MAX_DELAY_US 50000

/* How long accepting stays off after an accept error such as EMFILE. */
static const struct timeval accept_pause = {1, 0};
/* How long before a failed storage commit is tried again. */
static const struct timeval commit_retry = {1, 0};

static void log_fail(const char *action, const char *reason)
{
    struct log_line l;

    log_line_begin(&l, LOG_ERROR, action, "fail");
    log_line_cstr(&l, "error", reason);
    log_line_end(&l);
}

/* ---- group commit and log flush ----------------------------------------- */

void server_queue_commit(struct server *s)
{
    if (s->commit_queued)
        return;
    s->commit_queued = true;
    if (event_base_gettimeofday_cached(s->base, &s->commit_since) != 0)
        timerclear(&s->commit_since);
    event_active(s->commit_ev, 0, 0);
}

int server_commit(struct server *s)
{
    char err[ERR_LEN];

    if (storage_has_staged(&s->storage) && storage_commit(&s->storage, err, sizeof(err)) != 0) {
        /* Nothing is acknowledged before it is durable: keep the replies
         * held and try again shortly. */
        log_fail("storage_commit", err);
        s->commit_retrying = true;
        server_check_ev(event_add(s->commit_ev, &commit_retry), "cannot schedule the commit retry");
        return -1;
    }
    s->commit_queued = false;
    s->commit_retrying = false;
    while (s->pending != NULL)
        conn_release_held(s->pending);
    if (s->staged_log.len > 0)
        log_append_staged(&s->staged_log);
    return 0;
}

static void commit_cb(evutil_socket_t fd, short events, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)events;
    if (server_commit(s) == 0 && s->raffle_due)
        server_raffle(s);
}

static void flush_cb(evutil_socket_t fd, short events, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)events;
    s->flush_queued = false;
    log_flush();
}

static void log_pending_hook(void *ctx)
{
    struct server *s = ctx;

    if (s->flush_queued)
        return;
    s->flush_queued = true;
    if (event_base_gettimeofday_cached(s->base, &s->flush_since) != 0)
        timerclear(&s->flush_since);
    event_active(s->flush_ev, 0, 0);
}

static bool overdue(struct server *s, const struct timeval *since)
{
    struct timeval now, age;

    if (event_base_gettimeofday_cached(s->base, &now) != 0)
        return false;
    timersub(&now, since, &age);
    return age.tv_sec > 0 || age.tv_usec >= IDLE_MAX_DELAY_US;
}

void server_run_overdue(struct server *s)
{
    /* Not while a failed commit waits for its retry: every read would
     * otherwise hit the failing disk again and log it again. */
    if (s->commit_queued && !s->commit_retrying && overdue(s, &s->commit_since))
        server_commit(s);
    if (s->flush_queued && overdue(s, &s->flush_since)) {
        s->flush_queued = false;
        log_flush();
    }
}

void server_schedule_reap(struct server *s)
{
    event_active(s->reap_ev, 0, 0);
}

static void reap_cb(evutil_socket_t fd, short events, void *arg)
{
    struct server *s = arg;
    struct conn *c, *next;

    (void)fd;
    (void)events;
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        conn_reap(c);
    }
}

/* ---- the raffle ----------------------------------------------------------- */

void server_raffle(struct server *s)
{
    char err[ERR_LEN];

    /* The draw reads the file: every accepted bet must be in it first. If the
     * commit fails, the parked conns keep waiting and commit_cb retries. */
    s->raffle_due = true;
    if (server_commit(s) != 0)
        return;
    s->raffle_due = false;

    if (lottery_draw(&s->lottery, s->cfg->storage_path, err, sizeof(err)) != 0) {
        log_fail("sorteo", err);
        /* Nothing can be answered truthfully: let every waiting agency go. */
        for (int32_t a = 1; a <= s->lottery.agencies; a++) {
            struct conn *c = lottery_take_parked(&s->lottery, a);

            if (c != NULL) {
                c->flags &= ~CONN_PARKED;
                conn_close_after_flush(c);
            }
        }
        return;
    }
    log_action(LOG_INFO, "sorteo", "success");
    if (s->lottery.ignored_bets > 0)
        log_msg(LOG_WARNING, "%llu winning bets belong to agencies beyond %ld and were ignored",
                (unsigned long long)s->lottery.ignored_bets, (long)s->lottery.agencies);
    for (int32_t a = 1; a <= s->lottery.agencies; a++) {
        struct conn *c = lottery_take_parked(&s->lottery, a);

        if (c != NULL)
            conn_send_winners(c, a);
    }
}

/* ---- listener and signals ----------------------------------------------- */

static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen, void *arg)
{
    struct server *s = arg;

    (void)listener;
    (void)socklen;
    if (s->nconns >= (size_t)s->cfg->max_connections) {
        /* Accepted and closed at once rather than left in the backlog. */
        char ip[INET6_ADDRSTRLEN] = "unknown";
        char reason[128];
        struct log_line l;

        if (addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)addr)->sin_addr, ip, sizeof(ip));
        else if (addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)addr)->sin6_addr, ip, sizeof(ip));
        snprintf(reason, sizeof(reason), "too many connections (MAX_CONNECTIONS %d)",
                 s->cfg->max_connections);
        log_line_begin(&l, LOG_WARNING, "accept_connection", "fail");
        log_line_cstr(&l, "ip", ip);
        log_line_cstr(&l, "error", reason);
        log_line_end(&l);
        (void)close(fd); /* read-only or never used: nothing to lose */
        return;
    }
    conn_new(s, fd, addr);
}

void server_check_ev(int rc, const char *what)
{
    if (rc != 0)
        log_fail("event_setup", what);
}

static void accept_error_cb(struct evconnlistener *listener, void *arg)
{
    struct server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    char reason[256];

    /* Out of descriptors (or similar): retrying at once would spin. */
    snprintf(reason, sizeof(reason), "%s; accepting again in 1 s",
             evutil_socket_error_to_string(err));
    log_fail("accept_connection", reason);
    server_check_ev(evconnlistener_disable(listener), "cannot stop accepting");
    server_check_ev(event_add(s->accept_resume_ev, &accept_pause),
                    "cannot schedule accepting again");
}

static void accept_resume_cb(evutil_socket_t fd, short events, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)events;
    if (!s->stopping && s->listener != NULL)
        server_check_ev(evconnlistener_enable(s->listener), "cannot accept again");
}

static void signal_cb(evutil_socket_t sig, short events, void *arg)
{
    struct server *s = arg;
    struct log_line l;

    (void)events;
    log_line_begin(&l, LOG_INFO, "signal", "success");
    log_line_cstr(&l, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    log_line_end(&l);
    s->stopping = true;
    server_check_ev(event_base_loopbreak(s->base), "cannot stop the event loop");
}

static int open_listener(struct server *s)
{
    const struct server_config *cfg = s->cfg;
    struct addrinfo hints, *res = NULL;
    char port[16];
    char reason[ERR_LEN];
    struct log_line l;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", cfg->port);
    rc = getaddrinfo(cfg->listen_address, port, &hints, &res);
    if (rc != 0) {
        snprintf(reason, sizeof(reason), "cannot resolve %s: %s", cfg->listen_address,
                 gai_strerror(rc));
        log_fail("listen", reason);
        return -1;
    }
    s->listener =
        evconnlistener_new_bind(s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                cfg->listen_backlog, res->ai_addr, (int)res->ai_addrlen);
    if (s->listener == NULL) {
        snprintf(reason, sizeof(reason), "cannot listen on %s:%d: %s", cfg->listen_address,
                 cfg->port, strerror(errno));
        freeaddrinfo(res);
        log_fail("listen", reason);
        return -1;
    }
    freeaddrinfo(res);
    evconnlistener_set_error_cb(s->listener, accept_error_cb);

    log_line_begin(&l, LOG_INFO, "listen", "success");
    log_line_int(&l, "port", cfg->port);
    log_line_end(&l);
    return 0;
}

/* ---- set-up, run, shutdown ------------------------------------------------ */

static int open_storage(struct server *s)
{
    char err[ERR_LEN];
    size_t dropped = 0;
    struct log_line l;

    if (storage_open(&s->storage, s->cfg->storage_path, &dropped, err, sizeof(err)) != 0) {
        log_line_begin(&l, LOG_ERROR, "storage_open", "fail");
        log_line_cstr(&l, "path", s->cfg->storage_path);
        log_line_cstr(&l, "error", err);
        log_line_end(&l);
        return -1;
    }
    s->storage_open = true;
    log_line_begin(&l, LOG_INFO, "storage_open", "success");
    log_line_cstr(&l, "path", s->cfg->storage_path);
    log_line_int(&l, "dropped_bytes", (int64_t)dropped);
    log_line_end(&l);
    return 0;
}

static struct event *new_signal(struct server *s, int sig)
{
    struct event *ev = evsignal_new(s->base, sig, signal_cb, s);

    if (ev != NULL && event_add(ev, NULL) != 0) {
        event_free(ev);
        ev = NULL;
    }
    return ev;
}

int server_init(struct server *s, const struct server_config *cfg)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    bet_batch_init(&s->batch);
    buf_init(&s->out);
    buf_init(&s->staged_log);
    lottery_init(&s->lottery, cfg->agencies);

    if (open_storage(s) != 0)
        return -1;

    s->base = event_base_new();
    if (s->base == NULL || event_base_priority_init(s->base, PRIO_COUNT) != 0) {
        log_fail("event_base", "cannot create the event base");
        return -1;
    }
    s->commit_ev = event_new(s->base, -1, 0, commit_cb, s);
    s->flush_ev = event_new(s->base, -1, 0, flush_cb, s);
    s->accept_resume_ev = evtimer_new(s->base, accept_resume_cb, s);
    s->reap_ev = event_new(s->base, -1, 0, reap_cb, s);
    if (s->commit_ev == NULL || s->flush_ev == NULL || s->accept_resume_ev == NULL ||
        s->reap_ev == NULL || event_priority_set(s->commit_ev, PRIO_IDLE) != 0 ||
        event_priority_set(s->flush_ev, PRIO_IDLE) != 0) {
        log_fail("event_base", "cannot create the server's events");
        return -1;
    }
    log_set_pending_hook(log_pending_hook, s);

    s->sigterm_ev = new_signal(s, SIGTERM);
    s->sigint_ev = new_signal(s, SIGINT);
    if (s->sigterm_ev == NULL || s->sigint_ev == NULL) {
        log_fail("event_base", "cannot watch SIGTERM and SIGINT");
        return -1;
    }

    if (cfg->idle_timeout > 0) {
        struct timeval tv = {cfg->idle_timeout, 0};

        /* Every conn has the same timeout: libevent keeps them in a queue
         * instead of the heap. */
        s->idle_tv = event_base_init_common_timeout(s->base, &tv);
        if (s->idle_tv == NULL) {
            log_fail("event_base", "cannot set up the idle timeout");
            return -1;
        }
    }
    return open_listener(s);
}

int server_run(struct server *s)
{
    log_flush();
    if (event_base_dispatch(s->base) < 0) {
        log_fail("event_loop", "event_base_dispatch failed");
        return -1;
    }
    return 0;
}

int server_free(struct server *s)
{
    char err[ERR_LEN];
    int rc = 0;

    s->stopping = true;
    if (s->listener != NULL)
        server_check_ev(evconnlistener_disable(s->listener), "cannot stop accepting");

    while (s->conns != NULL) {
        struct conn *c = s->conns;
        struct log_line l;

        log_line_begin(&l, LOG_INFO, "close_connection", "success");
        log_line_cstr(&l, "ip", c->ip);
        log_line_end(&l);
        conn_free(c);
    }
    if (s->listener != NULL) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
        log_action(LOG_INFO, "close_listener", "success");
    }
    if (s->sigterm_ev != NULL)
        event_free(s->sigterm_ev);
    if (s->sigint_ev != NULL)
        event_free(s->sigint_ev);
    s->sigterm_ev = s->sigint_ev = NULL;

    if (s->accept_resume_ev != NULL)
        event_free(s->accept_resume_ev);
    if (s->reap_ev != NULL)
        event_free(s->reap_ev);
    s->reap_ev = NULL;
    if (s->commit_ev != NULL)
        event_free(s->commit_ev);
    log_set_pending_hook(NULL, NULL);
    if (s->flush_ev != NULL)
        event_free(s->flush_ev);
    s->accept_resume_ev = s->commit_ev = s->flush_ev = NULL;

    if (s->storage_open) {
        s->storage_open = false;
        if (storage_close(&s->storage, err, sizeof(err)) == 0) {
            /* Whatever was staged is durable now; its log lines may go out. */
            if (s->staged_log.len > 0)
                log_append_staged(&s->staged_log);
            log_action(LOG_INFO, "close_storage", "success");
        } else {
            log_fail("close_storage", err);
            rc = -1;
        }
    }
    lottery_free(&s->lottery);
    bet_batch_free(&s->batch);
    buf_free(&s->out);
    buf_free(&s->staged_log);
    if (s->base != NULL)
        event_base_free(s->base);
    s->base = NULL;
    return rc;
}
