#!/usr/bin/env python3
"""Exercise 8: ten agencies started at once, 1 to 5 with the bundled datasets
and 6 to 10 with one bet each from their environment (two of them winning; 10
keeps the generated file's sample bet): every bet stored once, the sorteo
exactly once after all of them, and each agency told only its own winners
(2, 3, 3, 2, 0, 1, 0, 1, 0, 0)."""

import os

import e2e

ENV_BETS = {
    6: {"NOMBRE": "Ana", "APELLIDO": "Pérez", "DOCUMENTO": "40000006", "NACIMIENTO": "1990-01-06", "NUMERO": "7574"},
    7: {"NOMBRE": "Bruno", "APELLIDO": "Gómez", "DOCUMENTO": "40000007", "NACIMIENTO": "1991-02-07", "NUMERO": "1234"},
    8: {"NOMBRE": "Carla", "APELLIDO": "Díaz", "DOCUMENTO": "40000008", "NACIMIENTO": "1992-03-08", "NUMERO": "7574"},
    9: {"NOMBRE": "Diego", "APELLIDO": "Ruiz", "DOCUMENTO": "40000009", "NACIMIENTO": "2000-02-29", "NUMERO": "7573"},
}
# Agency 10 keeps the sample bet generar-compose.sh gives an agency with no dataset.
GENERATED_BET = {10: {"NOMBRE": "Apostador", "APELLIDO": "Agencia 10", "DOCUMENTO": "40000010",
                      "NACIMIENTO": "1990-01-01", "NUMERO": "1010"}}


def test(tmp):
    path = os.path.join(tmp, "docker-compose.yaml")
    e2e.generate(path, 10)
    bets = e2e.write_override(os.path.join(tmp, "bets.json"),
                              {"client%d" % i: {"environment": bet} for i, bet in ENV_BETS.items()})
    with e2e.System([path, bets]) as system:
        system.up()
        e2e.check_bets_run(system, tmp, datasets=[1, 2, 3, 4, 5], env_bets={**ENV_BETS, **GENERATED_BET},
                           timeout=600)


if __name__ == "__main__":
    e2e.main(test)
