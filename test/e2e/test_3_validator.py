#!/usr/bin/env python3
"""Exercise 3: scripts/validar-echo-server.sh says success against the server
(building its netcat image when it is missing) and against a plain echo server,
fail against an echo server that alters the bytes, and leaves no container."""

import os

import e2e
from e2e import check

SUCCESS = "action: test_echo_server | result: success\n"
FAIL = "action: test_echo_server | result: fail\n"


def validate(host=None):
    env = dict(os.environ)
    env.pop("SERVER_PORT", None)
    env.pop("SERVER_IP", None)
    if host:
        env["SERVER_IP"] = host
    rc, out, err = e2e.run([e2e.VALIDATOR], timeout=300, ok=None, env=env)
    _, left, _ = e2e.run(["docker", "ps", "-aq", "--filter", "name=tp0-validar-echo"])
    check(left.strip() == "", "the validator left containers behind: %s" % left.split())
    return rc, out, err


def test(tmp):
    path = os.path.join(tmp, "docker-compose.yaml")
    e2e.generate(path, 0)  # the server alone
    helpers = []
    with e2e.System([path]) as system:
        try:
            system.up()
            system.wait_action("server", "listen", 60)
            # The validator builds its image when it is missing.
            e2e.run(["docker", "image", "rm", "-f", e2e.NETCAT_IMAGE], ok=None)
            rc, out, err = validate()
            check((rc, out) == (0, SUCCESS), "against the server: exit %d, %r, stderr %r" % (rc, out, err))
            check(e2e.image_id(e2e.NETCAT_IMAGE), "the validator did not build %s" % e2e.NETCAT_IMAGE)
            msgs = [f.get("msg", "") for _, a, r, f, _ in system.actions("server") if a == "receive_message"]
            check(len(msgs) == 1 and msgs[0].startswith("validar-echo-server "),
                  "the server logged %r" % msgs)

            for mode in ("plain", "alter"):
                name = "tp0-e2e-echo-%s" % mode
                helpers.append(name)
                e2e.run(["docker", "rm", "-f", name], ok=None)
                e2e.run(["docker", "run", "-d", "--name", name, "--network", e2e.NETWORK, e2e.ECHO_IMAGE, mode])
            rc, out, err = validate("tp0-e2e-echo-plain")
            check((rc, out) == (0, SUCCESS), "against a plain echo server: exit %d, %r, %r" % (rc, out, err))
            rc, out, err = validate("tp0-e2e-echo-alter")
            check((rc, out) == (1, FAIL), "against an altering server: exit %d, %r, %r" % (rc, out, err))
            rc, out, err = validate("no-such-host")
            check((rc, out) == (1, FAIL), "against no server: exit %d, %r, %r" % (rc, out, err))

            check(system.ps()["server"]["State"] == "running", "the server stopped")
            e2e.stop_server(system)
        finally:
            for name in helpers:
                e2e.run(["docker", "rm", "-f", name], ok=None)


if __name__ == "__main__":
    e2e.main(test)
