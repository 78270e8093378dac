/*
 * The server's configuration: an INI file with a [DEFAULT] section (read with
 * libinih), then one environment variable per key, of the same name, on top.
 */
#ifndef TP0_SERVER_CONFIG_H
#define TP0_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tp0/log.h"

#define SERVER_CONFIG_DEFAULT_PATH "./config.ini"

struct server_config {
    int port;                     /* SERVER_PORT, 1..65535 */
    char *server_ip;              /* SERVER_IP: the name clients use; not bound */
    char *listen_address;         /* SERVER_LISTEN_ADDRESS: address to bind */
    int listen_backlog;           /* SERVER_LISTEN_BACKLOG */
    enum log_level logging_level; /* LOGGING_LEVEL */
    int32_t agencies;             /* AGENCIES: FINISHED count that triggers the raffle */
    char *storage_path;           /* STORAGE_PATH */
    uint32_t max_frame_bytes;     /* MAX_FRAME_BYTES: cap on a frame's body */
    int max_connections;          /* MAX_CONNECTIONS: more are accepted and closed */
    int idle_timeout;             /* IDLE_TIMEOUT: seconds without a whole frame; 0 = off */
    size_t output_high_watermark; /* OUTPUT_HIGH_WATERMARK: stop reading above it */
};

/* Fills in every default (strings allocated). */
void server_config_defaults(struct server_config *c);

/*
 * Defaults, then the file at `path` if it exists (a missing file is not an
 * error), then the environment. Returns 0, or -1 with a message naming the key
 * (or the file and line) in err. The caller frees with server_config_free in
 * both cases.
 */
int server_config_load(struct server_config *c, const char *path, char *err, size_t errlen);

void server_config_free(struct server_config *c);

#endif
