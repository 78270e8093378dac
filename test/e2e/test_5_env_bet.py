#!/usr/bin/env python3
"""Exercise 5: one agency whose bet comes from its environment (NOMBRE,
APELLIDO, DOCUMENTO, NACIMIENTO, NUMERO): apuesta_enviada success on the client,
apuesta_almacenada on the server with the same dni and numero, the row stored,
and (NUMERO 7574 wins) one winner for the agency. The stored bet survives a
restart of the server's container, and a new `up` starts a new draw."""

import json
import os

import e2e
from e2e import check

BET = {"NOMBRE": "Santiago Lionel", "APELLIDO": "Lorca", "DOCUMENTO": "30904465",
       "NACIMIENTO": "1999-03-17", "NUMERO": "7574"}


def test(tmp):
    generated = os.path.join(tmp, "generated.yaml")
    e2e.generate(generated, 1)
    # Agency 1 has a bundled dataset, which the client would prefer: drop its
    # mount from the resolved configuration and give it the bet instead.
    cfg = e2e.System([generated]).config()
    client = cfg["services"]["client1"]
    client["volumes"] = [v for v in client["volumes"] if not v["target"].startswith("/app/datasets/")]
    client["environment"].update(BET)
    path = os.path.join(tmp, "docker-compose.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    row = (BET["NOMBRE"], BET["APELLIDO"], BET["DOCUMENTO"], BET["NACIMIENTO"], BET["NUMERO"])
    with e2e.System([path]) as system:
        system.up()
        e2e.check_bets_run(system, tmp, datasets=[], env_bets={1: BET}, timeout=120)

        # The bets live in the server container's own filesystem: they survive
        # a restart of that container...
        system.compose("start", "server")

        def opened():
            return [f for _, a, r, f, _ in system.actions("server") if a == "storage_open" and r == "success"]

        e2e.wait_until(lambda: len(opened()) == 2, 30, "the restarted server to open its storage")
        check(opened()[1].get("dropped_bytes") == "0", "the restart cut the storage: %r" % opened()[1])
        check(e2e.copy_storage(system, tmp) == {1: [row]}, "the restart lost the stored bet")
        e2e.stop_server(system)

        # ...and the next `up` after a `down` is a new draw, with no bets.
        system.down()
        system.up("server")
        system.wait_action("server", "listen", 60)
        check(e2e.copy_storage(system, tmp) == {}, "a new system started with the old bets")
        e2e.stop_server(system)


if __name__ == "__main__":
    e2e.main(test)
