/*
 * The client's configuration: a YAML file read with libcyaml, then CLI_*
 * environment variables on top, then validation of every value. Also Go's
 * duration syntax (parse and print), used by loop.period and connect.timeout.
 */
#ifndef TP0_CLIENT_CONFIG_H
#define TP0_CLIENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp0/log.h"

#define CONFIG_DEFAULT_PATH "./config.yaml"

/*
 * Default batch.maxAmount. A NEW_BETS frame is 5 (header) + 4 (count) bytes,
 * and each bet costs 4 (map size) + 12 x 4 (length prefixes of 6 keys and 6
 * values) + 46 (the key names AGENCIA NOMBRE APELLIDO DOCUMENTO NACIMIENTO
 * NUMERO) = 98 bytes plus its values. The bundled datasets' values (agency digit
 * included) average 41.5 bytes and reach 56 at most, so a bet encodes to about
 * 140 bytes and to 154 at worst: 8192 bytes hold (8192 - 9) / 140 = 58 typical
 * bets and 53 worst-case ones. 50 keeps every batch of the bundled data under
 * 8 KiB; the client still checks each bet's encoded size and closes a batch
 * early whenever the next bet would cross 8 KiB, whatever maxAmount says.
 */
#define CONFIG_DEFAULT_BATCH_MAX 50u
/* Unanswered batches in flight: enough to cover the server's group commit. */
#define CONFIG_DEFAULT_BATCH_WINDOW 16u
#define CONFIG_MAX_BATCH_WINDOW     4096u

#define NS_PER_MS  INT64_C(1000000)
#define NS_PER_SEC INT64_C(1000000000)

enum client_mode {
    MODE_BETS,
    MODE_ECHO,
};

struct client_config {
    int32_t id;             /* id, CLI_ID: the agency number, > 0; required */
    char *server_address;   /* server.address as given: "host:port" */
    char *server_host;      /* its host part (brackets of [v6] removed) */
    char *server_port;      /* its port part, 1..65535 */
    int64_t loop_amount;    /* loop.amount: echo messages, >= 0 */
    int64_t loop_period_ns; /* loop.period: Go duration, >= 0 */
    char *log_level_name;   /* log.level as configured (printed back as is) */
    enum log_level log_level;
    uint32_t batch_max_amount;  /* batch.maxAmount: bets per NEW_BETS, >= 1 */
    uint32_t batch_window;      /* batch.window: unanswered batches, >= 1 */
    int64_t connect_timeout_ns; /* connect.timeout: Go duration, >= 0 */
    enum client_mode mode;      /* mode: "bets" (default) or "echo" */
    char *dataset;              /* dataset: path of the agency's CSV file */
    bool dataset_explicit;      /* dataset came from the file or CLI_DATASET */
};

/*
 * Loads the YAML file at `path` (NULL means CONFIG_DEFAULT_PATH, which may be
 * missing: then only defaults and the environment apply; an explicit path must
 * exist), applies CLI_* variables (an empty variable counts as unset), and
 * validates. Returns 0, or -1 with a message naming the key in err. On failure
 * nothing needs freeing; on success call config_free().
 */
int config_load(struct client_config *cfg, const char *path, char *err, size_t errlen);
void config_free(struct client_config *cfg);

/*
 * Go's time.ParseDuration: an optional sign, then one or more decimal numbers
 * with optional fraction, each with a unit ns, us (or µs), ms, s, m, h; "0" alone
 * is allowed. Returns false on bad syntax or overflow.
 */
bool duration_parse(const char *s, int64_t *ns_out);
/* Go's Duration.String(): "1h2m3.5s", "100ms", "1.5µs", "0s". Returns out. */
#define DURATION_STR_MAX 40
char *duration_format(int64_t ns, char out[DURATION_STR_MAX]);

#endif
