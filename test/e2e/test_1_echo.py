#!/usr/bin/env python3
"""Exercise 1: scripts/generar-compose.sh for 1, 2 and 5 clients (contents,
determinism, bad arguments), then the echo system with 5 clients by 5 messages:
every client logs N°1 to N°5 and loop_finished, nothing fails, the server keeps
running."""

import os

import e2e
from e2e import check

SUBNET = "172.25.125.0/24"


def check_generated(tmp, clients, mode):
    path = os.path.join(tmp, "gen-%d-%s.yaml" % (clients, mode or "default"))
    out = e2e.generate(path, clients, mode)
    check(out == "Nombre del archivo de salida: %s\nCantidad de clientes: %d\n" % (path, clients),
          "generar-compose.sh printed %r" % out)
    with open(path, "rb") as f:
        first = f.read()
    e2e.generate(path, clients, mode)
    with open(path, "rb") as f:
        check(f.read() == first, "a second run with the same arguments wrote a different file")

    cfg = e2e.System([path]).config()
    check(cfg.get("name") == "tp0", "project name %r" % cfg.get("name"))
    services = cfg["services"]
    want = {"server"} | {"client%d" % i for i in range(1, clients + 1)}
    check(set(services) == want, "services %s, expected %s" % (sorted(services), sorted(want)))
    net = cfg["networks"]["testing_net"]
    check([c.get("subnet") for c in net["ipam"]["config"]] == [SUBNET], "network %r" % net)

    def mounts(svc):
        return {v["target"]: (v["source"], v.get("read_only", False)) for v in svc.get("volumes", [])}

    src = e2e.SOURCE_DIR
    server = services["server"]
    check(server.get("container_name") == "server", "server container_name %r" % server.get("container_name"))
    # With no clients the server runs alone and keeps its config's AGENCIES.
    agencies = (server.get("environment") or {}).get("AGENCIES")
    check(agencies == (str(clients) if clients else None), "AGENCIES %r" % agencies)
    check(server["build"]["context"] == src and server["build"]["dockerfile"] == "docker/server/Dockerfile",
          "server build %r" % server["build"])
    check(mounts(server) == {"/app/config.ini": (os.path.join(src, "docker/server/config.ini"), True)},
          "server volumes %r" % mounts(server))
    check(list(server["networks"]) == ["testing_net"], "server networks %r" % server["networks"])
    for i in range(1, clients + 1):
        c = services["client%d" % i]
        check(c.get("container_name") == "client%d" % i, "client%d container_name" % i)
        env = c["environment"]
        check(env.get("CLI_ID") == str(i) and env.get("CLI_MODE") == (mode or "bets"),
              "client%d environment %r" % (i, env))
        want_mounts = {"/app/config.yaml": (os.path.join(src, "docker/client/config.yaml"), True)}
        dataset = os.path.join(src, "datasets", "agency-%d.csv" % i)
        bet_keys = {"NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO"}
        if os.path.exists(dataset):
            want_mounts["/app/datasets/agency-%d.csv" % i] = (dataset, True)
            check(not bet_keys & set(env), "client%d has a dataset and a bet in its environment" % i)
        elif (mode or "bets") == "bets":
            # No dataset: one sample bet from the environment.
            check(bet_keys <= set(env) and env["DOCUMENTO"] == str(40000000 + i),
                  "client%d has neither a dataset nor a bet: %r" % (i, env))
        check(mounts(c) == want_mounts, "client%d volumes %r" % (i, mounts(c)))
        check(list(c.get("depends_on", {})) == ["server"], "client%d depends_on %r" % (i, c.get("depends_on")))
        check(list(c["networks"]) == ["testing_net"], "client%d networks" % i)
        check(c["build"]["dockerfile"] == "docker/client/Dockerfile", "client%d build" % i)


def check_bad_arguments(tmp):
    target = os.path.join(tmp, "keep.yaml")
    with open(target, "w") as f:
        f.write("untouched\n")
    cases = [[], [target], [target, "-1"], [target, "abc"], [target, "1.5"], [target, "2", "both"],
             [target, "2", "echo", "extra"], [target, "999999999999"], [os.path.join(tmp, "no", "dir.yaml"), "1"],
             ["", "1"]]
    for args in cases:
        rc, out, err = e2e.run([e2e.GENERATOR] + args, ok=None)
        check(rc == 2, "generar-compose.sh %r exited %d, expected 2" % (args, rc))
        check("usage:" in err, "generar-compose.sh %r: no usage on stderr: %r" % (args, err))
        check(out == "", "generar-compose.sh %r printed on stdout: %r" % (args, out))
    with open(target) as f:
        check(f.read() == "untouched\n", "a bad invocation overwrote the output file")
    check(sorted(os.listdir(tmp)) == ["keep.yaml"], "files left behind: %s" % os.listdir(tmp))


def test(tmp):
    bad = os.path.join(tmp, "bad")
    os.mkdir(bad)
    check_bad_arguments(bad)
    for clients, mode in ((1, None), (2, "bets"), (5, "echo"), (7, "bets"), (0, None)):
        check_generated(tmp, clients, mode)

    path = os.path.join(tmp, "docker-compose.yaml")
    e2e.generate(path, 5, "echo")
    clients = ["client%d" % i for i in range(1, 6)]
    # The shipped config sends 5 messages 5 s apart; only the period is sped up.
    fast = e2e.write_override(os.path.join(tmp, "fast.json"),
                              {c: {"environment": {"CLI_LOOP_PERIOD": "100ms"}} for c in clients})
    with e2e.System([path, fast]) as system:
        system.up()
        states = system.wait_exited(clients, 120)
        e2e.check_exit_codes(states, clients)
        check(states["server"]["State"] == "running", "the server is %s" % states["server"]["State"])
        acts = system.actions()
        e2e.check_no_fail(acts)
        for i in range(1, 6):
            mine = [(a, r, f) for svc, a, r, f, _ in acts if svc == "client%d" % i]
            msgs = [f.get("msg") for a, r, f in mine if a == "receive_message"]
            want = ["[CLIENT %d] Message N°%d" % (i, n) for n in range(1, 6)]
            check(msgs == want, "client%d echoed %r, expected %r" % (i, msgs, want))
            check(all(f.get("client_id") == str(i) for a, r, f in mine if a == "receive_message"),
                  "client%d: wrong client_id" % i)
            ends = [a for a, r, f in mine if a == "loop_finished"]
            check(ends == ["loop_finished"], "client%d: %d loop_finished lines" % (i, len(ends)))
            after = [a for a, r, f in mine][[a for a, r, f in mine].index("loop_finished"):]
            check("receive_message" not in after, "client%d: messages after loop_finished" % i)
        echoed = sorted(f.get("msg") for svc, a, r, f, _ in acts if svc == "server" and a == "receive_message")
        want = sorted("[CLIENT %d] Message N°%d" % (i, n) for i in range(1, 6) for n in range(1, 6))
        check(echoed == want, "the server logged %d receive_message lines, expected 25" % len(echoed))
        check(system.ps()["server"]["State"] == "running", "the server stopped by itself")
        e2e.stop_server(system)


if __name__ == "__main__":
    e2e.main(test)
