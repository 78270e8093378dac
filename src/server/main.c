/* The central lottery server: configuration, then one event loop. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "server.h"
#include "tp0/log.h"

/* Every connection is a descriptor: use as many as the hard limit allows. */
static void raise_nofile_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_msg(LOG_WARNING, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    if (rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_msg(LOG_WARNING, "setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
}

static void log_config(const struct server_config *cfg)
{
    struct log_line l;

    log_line_begin(&l, LOG_INFO, "config", "success");
    log_line_int(&l, "port", cfg->port);
    log_line_int(&l, "listen_backlog", cfg->listen_backlog);
    log_line_cstr(&l, "logging_level", log_level_name(cfg->logging_level));
    log_line_int(&l, "agencies", cfg->agencies);
    log_line_cstr(&l, "storage", cfg->storage_path);
    log_line_end(&l);
    log_msg(LOG_DEBUG,
            "listen_address %s, max_frame_bytes %lu, max_connections %d, idle_timeout %d s, "
            "output_high_watermark %zu",
            cfg->listen_address, (unsigned long)cfg->max_frame_bytes, cfg->max_connections,
            cfg->idle_timeout, cfg->output_high_watermark);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : SERVER_CONFIG_DEFAULT_PATH;
    struct server_config cfg;
    struct server srv;
    struct sigaction sa;
    char err[1024];
    int rc = 0;

    log_init(LOG_INFO, STDOUT_FILENO);
    if (argc > 2) {
        fprintf(stderr, "usage: %s [config.ini]\n", argv[0]);
        log_shutdown();
        return 2;
    }
    /* A peer that closes early must cost a failed write, not the process. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        log_msg(LOG_WARNING, "cannot ignore SIGPIPE: %s", strerror(errno));

    if (server_config_load(&cfg, path, err, sizeof(err)) != 0) {
        struct log_line l;

        log_line_begin(&l, LOG_ERROR, "config", "fail");
        log_line_cstr(&l, "error", err);
        log_line_end(&l);
        log_shutdown();
        server_config_free(&cfg);
        return 2;
    }
    log_set_level(cfg.logging_level);
    raise_nofile_limit();
    log_config(&cfg);

    if (server_init(&srv, &cfg) == 0) {
        if (server_run(&srv) != 0)
            rc = 1;
    } else {
        rc = 1;
    }
    if (server_free(&srv) != 0)
        rc = 1;
    log_action(LOG_INFO, "shutdown", rc == 0 ? "success" : "fail");
    log_shutdown();
    server_config_free(&cfg);
    libevent_global_shutdown();
    return rc;
}
