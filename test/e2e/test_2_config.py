#!/usr/bin/env python3
"""Exercise 2: the configuration is mounted, not baked in. A run with the shipped
configs, then loop.amount, loop.period and log.level changed in the client's
file and SERVER_LISTEN_BACKLOG and LOGGING_LEVEL in the server's, and `up`
again without building: the config log lines show the new values and the
images are the same ones."""

import os
import re
import shutil

import e2e
from e2e import check

CLIENTS = ["client1", "client2"]


def edit(path, pattern, replacement):
    """Replaces the one line matching `pattern`, as a user editing the file would."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new, n = re.subn(pattern, replacement, text, flags=re.M)
    check(n == 1, "%s: %d lines match %r" % (path, n, pattern))
    with open(path, "r+", encoding="utf-8") as f:
        f.write(new)
        f.truncate()


def config_lines(system):
    out = {}
    for svc, a, r, f, _ in system.actions():
        if a == "config" and r == "success":
            out[svc] = f
    return out


def run_once(system, want_server, want_client, finish):
    system.up()
    for svc in ["server"] + CLIENTS:
        system.wait_action(svc, "config", 60)
    lines = config_lines(system)
    for key, value in want_server.items():
        check(lines["server"].get(key) == value, "server config %s: %r, expected %r"
              % (key, lines["server"].get(key), value))
    for c in CLIENTS:
        for key, value in want_client.items():
            check(lines[c].get(key) == value, "%s config %s: %r, expected %r" % (c, key, lines[c].get(key), value))
    if finish:
        states = system.wait_exited(CLIENTS, 60)
        e2e.check_exit_codes(states, CLIENTS)
        acts = system.actions()
        e2e.check_no_fail(acts)
        for c in CLIENTS:
            n = sum(1 for svc, a, _, _, _ in acts if svc == c and a == "receive_message")
            check(n == int(want_client["loop_amount"]), "%s echoed %d messages" % (c, n))
            check(any(svc == c and a == "loop_finished" for svc, a, _, _, _ in acts), "%s: no loop_finished" % c)
        e2e.stop_server(system)
    else:
        e2e.check_no_fail(system.actions())


def test(tmp):
    cfg = os.path.join(tmp, "cfg")
    os.makedirs(cfg)
    server_ini = os.path.join(cfg, "config.ini")
    client_yaml = os.path.join(cfg, "config.yaml")
    shutil.copyfile(os.path.join(e2e.SOURCE_DIR, "docker", "server", "config.ini"), server_ini)
    shutil.copyfile(os.path.join(e2e.SOURCE_DIR, "docker", "client", "config.yaml"), client_yaml)

    path = os.path.join(tmp, "docker-compose.yaml")
    e2e.generate(path, len(CLIENTS), "echo")
    # The copies take the place of docker/*/config* (compose merges volumes by target).
    override = e2e.write_override(os.path.join(tmp, "configs.json"), dict(
        [("server", {"volumes": [server_ini + ":/app/config.ini:ro"]})]
        + [(c, {"volumes": [client_yaml + ":/app/config.yaml:ro"]}) for c in CLIENTS]))
    images = {i: e2e.image_id(i) for i in (e2e.SERVER_IMAGE, e2e.CLIENT_IMAGE)}
    check(all(images.values()), "images missing: %r" % images)

    with e2e.System([path, override]) as system:
        # The shipped values first (5 messages, 5 s apart: not waited for).
        run_once(system,
                 {"listen_backlog": "5", "logging_level": "INFO"},
                 {"loop_amount": "5", "loop_period": "5s", "log_level": "INFO"}, finish=False)
        system.down()

        edit(client_yaml, r"^  amount: .*$", "  amount: 3")
        edit(client_yaml, r"^  period: .*$", '  period: "150ms"')
        edit(client_yaml, r"^  level: .*$", '  level: "DEBUG"')
        edit(server_ini, r"^SERVER_LISTEN_BACKLOG *=.*$", "SERVER_LISTEN_BACKLOG = 17")
        edit(server_ini, r"^LOGGING_LEVEL *=.*$", "LOGGING_LEVEL = DEBUG")
        run_once(system,
                 {"listen_backlog": "17", "logging_level": "DEBUG"},
                 {"loop_amount": "3", "loop_period": "150ms", "log_level": "DEBUG"}, finish=True)

        after = {i: e2e.image_id(i) for i in images}
        check(after == images, "the images changed: %r -> %r" % (images, after))
        _, out, _ = e2e.run(["docker", "inspect", "--format", "{{.Image}}", "server", "client1"])
        check(out.split() == [images[e2e.SERVER_IMAGE], images[e2e.CLIENT_IMAGE]],
              "containers run other images: %s" % out.split())


if __name__ == "__main__":
    e2e.main(test)
