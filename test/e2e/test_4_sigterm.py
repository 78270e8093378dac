#!/usr/bin/env python3
"""Exercise 4: graceful shutdown under docker compose (500 messages, 150 ms
apart, so the loops are still running):
  1. `stop` client1 mid-loop: exit code 0, well before the 10 s SIGKILL;
  2. `stop` the server with client2 and client3 connected: exit code 0, its
     shutdown logged (the clients then lose their server, as expected);
  3. a fresh system, every client mid-loop, `down -t 10`: every container
     exits with code 0 (read from the engine's events, since down removes them).
"""

import os
import time

import e2e
from e2e import check

CLIENTS = ["client1", "client2", "client3"]
GRACE = 9.5  # seconds: more means SIGTERM did not do it and SIGKILL came


def mid_loop(system, client, n):
    system.wait_action(client, "receive_message", 60,
                       pred=lambda f: f.get("msg", "").endswith("Message N°%d" % n))


def test(tmp):
    path = os.path.join(tmp, "docker-compose.yaml")
    e2e.generate(path, len(CLIENTS), "echo")
    slow = e2e.write_override(os.path.join(tmp, "loop.json"), {
        c: {"environment": {"CLI_LOOP_AMOUNT": "500", "CLI_LOOP_PERIOD": "150ms"}} for c in CLIENTS})
    with e2e.System([path, slow]) as system:
        system.up()
        for c in CLIENTS:
            mid_loop(system, c, 3)
        e2e.check_no_fail(system.actions())

        # 1. One client.
        t0 = time.monotonic()
        system.compose("stop", "-t", "10", "client1", timeout=60)
        took = time.monotonic() - t0
        code = system.exit_code("client1")
        check(code == 0, "client1 exited with code %d after SIGTERM" % code)
        check(took < GRACE, "stopping client1 took %.1fs" % took)
        mine = [(a, r) for svc, a, r, _, _ in system.actions("client1")]
        check(("loop_finished", "success") not in mine, "client1 finished its 500 messages before the stop")
        check(not any(r == "fail" for _, r in mine), "client1 logged a failure when stopped: %r" % mine[-5:])
        states = system.ps()
        check(all(states[s]["State"] == "running" for s in ("server", "client2", "client3")),
              "the others stopped with client1: %r" % {s: states[s]["State"] for s in states})
        e2e.check_no_fail(system.actions())

        # 2. The server, with two clients connected.
        e2e.stop_server(system)

        # 3. The whole system.
        system.down()
        system.up()
        for c in CLIENTS:
            mid_loop(system, c, 2)
        e2e.check_no_fail(system.actions())
        since = time.time()
        t0 = time.monotonic()
        system.compose("down", "-t", "10", timeout=120)
        took = time.monotonic() - t0
        until = time.time() + 1
        codes = e2e.wait_until(lambda: (lambda c: c if len(c) == 4 else None)(e2e.die_events(since, until)),
                               10, "die events of the four containers")
        check(codes == {"server": 0, "client1": 0, "client2": 0, "client3": 0},
              "exit codes after down -t 10: %r" % codes)
        check(took < GRACE + 2, "down -t 10 took %.1fs" % took)


if __name__ == "__main__":
    e2e.main(test)
