/*
 * The agency client: reads its configuration, connects to the server (with
 * retries), then runs echo mode or bets mode on one libevent loop. SIGTERM and
 * SIGINT stop it cleanly at any moment with exit code 0.
 *
 * Exit codes: 0 success or stopped by a signal; 1 the server or the network
 * failed; 2 bad configuration or no bets to send; 3 bets sent and winners
 * received, but some dataset rows were rejected.
 */
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "agency.h"
#include "config.h"
#include "echo.h"
#include "net.h"
#include "tp0/log.h"

#define EXIT_NETWORK 1
#define EXIT_CONFIG  2

/* Priorities: normal events at 1 (libevent's default for 3 levels), the log
 * flush at 2 so it runs after everything else that is active. */
#define PRIORITIES     3
#define PRIORITY_FLUSH 2

struct app {
    struct event_base *base;
    struct client_config cfg;
    struct event *sig_term;
    struct event *sig_int;
    struct event *flush_ev;
    struct connector *connector;
    struct echo *echo;
    struct agency *agency;
    bool over;
    int exit_code;
};

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush();
}

/* The logger asks for a flush at the end of the current loop iteration. */
static void log_pending_hook(void *ctx)
{
    struct app *app = ctx;
    if (app->flush_ev != NULL) {
        event_active(app->flush_ev, EV_TIMEOUT, 0);
    }
}

static void session_done(void *ctx, int exit_code)
{
    struct app *app = ctx;
    if (app->over) {
        return;
    }
    app->over = true;
    app->exit_code = exit_code;
    /* loopexit lets this iteration's callbacks run; it can only fail to
     * allocate, and then loopbreak, which just sets a flag, stops the loop. */
    if (event_base_loopexit(app->base, NULL) != 0) {
        (void)event_base_loopbreak(app->base);
    }
}

static void connected(void *ctx, struct bufferevent *bev)
{
    struct app *app = ctx;
    if (bev == NULL) {
        session_done(app, EXIT_NETWORK); /* connect.timeout passed: logged */
        return;
    }
    /* Small frames (FINISHED, one bet, echoes) must not wait for Nagle. */
    int one = 1;
    if (setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        log_msg(LOG_DEBUG, "cannot set TCP_NODELAY: %s", strerror(errno));
    }
    if (app->cfg.mode == MODE_ECHO) {
        echo_start(app->echo, bev);
    } else {
        agency_start(app->agency, bev);
    }
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct app *app = arg;
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "signal", "success");
    log_line_cstr(&l, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    log_line_end(&l);
    if (app->over) {
        return;
    }
    connector_free(app->connector);
    app->connector = NULL;
    if (app->echo != NULL) {
        echo_stop(app->echo);
    }
    if (app->agency != NULL) {
        agency_stop(app->agency);
    }
    session_done(app, 0);
}

static void log_config(const struct client_config *cfg)
{
    char period[DURATION_STR_MAX];
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "config", "success");
    log_line_int(&l, "client_id", cfg->id);
    log_line_cstr(&l, "server_address", cfg->server_address);
    log_line_int(&l, "loop_amount", cfg->loop_amount);
    log_line_cstr(&l, "loop_period", duration_format(cfg->loop_period_ns, period));
    log_line_cstr(&l, "log_level", cfg->log_level_name);
    log_line_int(&l, "batch_max_amount", cfg->batch_max_amount);
    log_line_end(&l);
}

/* Installed before anything slow (the dataset's row count): a signal that comes
 * meanwhile waits in libevent until the loop runs, instead of killing us. */
static int install_signals(struct app *app)
{
    app->sig_term = evsignal_new(app->base, SIGTERM, signal_cb, app);
    app->sig_int = evsignal_new(app->base, SIGINT, signal_cb, app);
    if (app->sig_term == NULL || app->sig_int == NULL || event_add(app->sig_term, NULL) != 0 ||
        event_add(app->sig_int, NULL) != 0) {
        log_msg(LOG_ERROR, "cannot install the signal handlers");
        return EXIT_NETWORK;
    }
    return 0;
}

/* Sets up the session; returns an exit code when it cannot. */
static int setup(struct app *app)
{
    char err[512];
    struct log_line l;
    if (app->cfg.mode == MODE_BETS) {
        app->agency = agency_new(app->base, &app->cfg, session_done, app, err, sizeof(err));
        if (app->agency == NULL) {
            log_line_begin(&l, LOG_ERROR, "open_dataset", "fail");
            log_line_cstr(&l, "error", err);
            log_line_end(&l);
            return EXIT_CONFIG;
        }
    } else {
        app->echo = echo_new(app->base, &app->cfg, session_done, app);
        if (app->echo == NULL) {
            log_msg(LOG_ERROR, "cannot set up echo mode");
            return EXIT_NETWORK;
        }
    }
    app->connector = connector_start(app->base, &app->cfg, connected, app);
    if (app->connector == NULL) {
        log_msg(LOG_ERROR, "cannot start connecting");
        return EXIT_NETWORK;
    }
    return 0;
}

static void teardown(struct app *app)
{
    connector_free(app->connector);
    echo_free(app->echo);
    agency_free(app->agency);
    if (app->sig_term != NULL) {
        event_free(app->sig_term);
    }
    if (app->sig_int != NULL) {
        event_free(app->sig_int);
    }
    if (app->flush_ev != NULL) {
        event_free(app->flush_ev);
        app->flush_ev = NULL;
    }
    if (app->base != NULL) {
        event_base_free(app->base);
    }
}

int main(int argc, char **argv)
{
    log_init(LOG_INFO, 1);
    /* A write to a closed socket must be an error, not a fatal signal. */
    (void)signal(SIGPIPE, SIG_IGN);
    if (argc > 2) {
        log_msg(LOG_ERROR, "usage: %s [config.yaml]", argv[0]);
        log_shutdown();
        return EXIT_CONFIG;
    }

    struct app app;
    memset(&app, 0, sizeof(app));
    char err[512];
    if (config_load(&app.cfg, argc == 2 ? argv[1] : NULL, err, sizeof(err)) != 0) {
        struct log_line l;
        log_line_begin(&l, LOG_ERROR, "config", "fail");
        log_line_cstr(&l, "error", err);
        log_line_end(&l);
        log_shutdown();
        return EXIT_CONFIG;
    }
    int rc = 0;
    app.base = event_base_new();
    if (app.base == NULL || event_base_priority_init(app.base, PRIORITIES) != 0) {
        log_msg(LOG_ERROR, "cannot create the event loop");
        rc = EXIT_NETWORK;
        goto out;
    }
    app.flush_ev = event_new(app.base, -1, 0, flush_cb, NULL);
    if (app.flush_ev == NULL || event_priority_set(app.flush_ev, PRIORITY_FLUSH) != 0) {
        log_msg(LOG_ERROR, "cannot create the log flush event");
        rc = EXIT_NETWORK;
        goto out;
    }
    log_set_pending_hook(log_pending_hook, &app);
    rc = install_signals(&app);
    if (rc != 0) {
        goto out;
    }

    /* The configuration is always shown, whatever level it sets. */
    log_config(&app.cfg);
    log_set_level(app.cfg.log_level);
    log_flush();

    rc = setup(&app);
    if (rc == 0) {
        if (event_base_dispatch(app.base) < 0 || !app.over) {
            log_msg(LOG_ERROR, "the event loop stopped unexpectedly");
            rc = EXIT_NETWORK;
        } else {
            rc = app.exit_code;
        }
    }

out:
    log_set_pending_hook(NULL, NULL);
    teardown(&app);
    log_action(LOG_INFO, "shutdown", "success");
    log_shutdown();
    config_free(&app.cfg);
    libevent_global_shutdown();
    return rc;
}
