#!/usr/bin/env python3
"""Exercises 6 and 7, one run: the README's quick start (generated file with
five agencies, `up -d --build`) with the bundled datasets. The server's
apuesta_recibida cantidad values add up to 78,697 with nothing failing, bets.csv
holds each agency's rows in order, the sorteo runs exactly once after every
agency's bets, and client1 to client5 get 2, 3, 3, 2 and 0 winners."""

import os

import e2e


def test(tmp):
    path = os.path.join(tmp, "docker-compose-dev.yaml")
    e2e.generate(path, 5)
    with e2e.System([path]) as system:
        system.up(build=True)
        e2e.check_bets_run(system, tmp, datasets=[1, 2, 3, 4, 5], env_bets={}, timeout=600)


if __name__ == "__main__":
    e2e.main(test)
