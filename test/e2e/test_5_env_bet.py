#!/usr/bin/env python3
"""Exercise 5: one agency whose bet comes from its environment (NOMBRE,
APELLIDO, DOCUMENTO, NACIMIENTO, NUMERO): apuesta_enviada success on the client,
apuesta_almacenada on the server with the same dni and numero, the row stored,
and (NUMERO 7574 wins) one winner for the agency."""

import json
import os

import e2e

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
    with e2e.System([path]) as system:
        system.up()
        e2e.check_bets_run(system, tmp, datasets=[], env_bets={1: BET}, timeout=120)


if __name__ == "__main__":
    e2e.main(test)
