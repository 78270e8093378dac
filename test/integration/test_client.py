#!/usr/bin/env python3
"""Loopback tests of the real client against the real server (issue 3, tests 1-7)."""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from client_lib import FrameProxy, dataset_rows, link_datasets, storage_rows  # noqa: E402
from harness import check  # noqa: E402

FRAME_LIMIT = 8192
WINNERS_BY_AGENCY = {1: 2, 2: 3, 3: 3, 4: 2, 5: 0}


def client_env(port, agency, **extra):
    env = {"CLI_ID": agency, "CLI_SERVER_ADDRESS": "127.0.0.1:%d" % port}
    env.update(extra)
    return env


def start_client(workdir, env, name="client"):
    # No config file argument: ./config.yaml does not exist in workdir, so the
    # client runs from the environment alone.
    return h.start_client(workdir, env=env, args=[], name=name)


def expect_exit(proc, want, timeout=60.0):
    rc = proc.wait_exit(timeout)
    check(rc == want, "%s exit code %r, want %r; output:\n%s" % (proc.name, rc, want, proc.tail()))
    proc.actions()  # every action line well formed


def action_fields(proc, action, result="success"):
    return [f for a, r, f in proc.actions() if a == action and r == result]


def stop_server(srv):
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(20)
    check(rc == 0, "server exit code %r; output:\n%s" % (rc, srv.tail()))


def test_echo_three_clients():
    """1. Echo mode, 3 clients x 5 messages: every message echoed and logged."""
    with h.tmpdir() as d:
        srv = h.start_server(d)
        try:
            clients = [
                start_client(d, client_env(srv.port, i, CLI_MODE="echo", CLI_LOOP_AMOUNT=5,
                                           CLI_LOOP_PERIOD="50ms"), name="client%d" % i)
                for i in (1, 2, 3)
            ]
            for i, c in enumerate(clients, 1):
                expect_exit(c, 0, 30)
                config = c.matching(r"action: config \|")
                check(len(config) == 1 and config[0].endswith(
                    "action: config | result: success | client_id: %d | server_address: "
                    "127.0.0.1:%d | loop_amount: 5 | loop_period: 50ms | log_level: INFO | "
                    "batch_max_amount: 50" % (i, srv.port)), "config line: %r" % config)
                msgs = [f["msg"] for f in action_fields(c, "receive_message")]
                want = ["[CLIENT %d] Message N\u00b0%d" % (i, k) for k in range(1, 6)]
                check(msgs == want, "client %d echoes %r, want %r" % (i, msgs, want))
                check(action_fields(c, "loop_finished") == [{"client_id": str(i)}],
                      "client %d: no single loop_finished line" % i)
            check(srv.count(r"action: receive_message \| result: success") == 15,
                  "server logged %d echoes" % srv.count(r"action: receive_message"))
        finally:
            stop_server(srv)


def test_env_bet_winner():
    """2. One environment bet with NUMERO=7574 and AGENCIES=1: a winner."""
    with h.tmpdir() as d:
        srv = h.start_server(d, env={"AGENCIES": 1})
        try:
            c = start_client(d, client_env(srv.port, 1, NOMBRE="Santiago Lionel", APELLIDO="Lorca",
                                           DOCUMENTO="30904465", NACIMIENTO="1999-03-17",
                                           NUMERO="7574"))
            expect_exit(c, 0)
            check(c.count(r"action: apuesta_enviada \| result: success \| dni: 30904465 \| "
                          r"numero: 7574$") == 1, "no apuesta_enviada line:\n" + c.tail())
            check(action_fields(c, "consulta_ganadores") == [{"cant_ganadores": "1"}],
                  "cant_ganadores:\n" + c.tail())
        finally:
            stop_server(srv)
        with open(srv.storage_path, "rb") as f:
            data = f.read()
        check(data == b"1,Santiago Lionel,Lorca,30904465,1999-03-17,7574\r\n",
              "bets.csv holds %r" % data)


def test_five_datasets():
    """3. The five bundled datasets: 78,697 bets stored row for row; winners 2,3,3,2,0."""
    with h.tmpdir() as d:
        link_datasets(d)
        srv = h.start_server(d, env={"AGENCIES": 5})
        try:
            clients = {i: start_client(d, client_env(srv.port, i), name="client%d" % i)
                       for i in range(1, 6)}
            expected = {i: dataset_rows(os.path.join(d, "datasets", "agency-%d.csv" % i))
                        for i in range(1, 6)}
            for i, c in clients.items():
                expect_exit(c, 0, 120)
                sent = action_fields(c, "apuestas_enviadas")
                check(len(sent) == 1 and sent[0]["cantidad"] == str(len(expected[i])),
                      "agency %d apuestas_enviadas %r" % (i, sent))
                check(action_fields(c, "consulta_ganadores")
                      == [{"cant_ganadores": str(WINNERS_BY_AGENCY[i])}],
                      "agency %d winners:\n%s" % (i, c.tail()))
                check(c.count(r"apuesta_rechazada") == 0, "agency %d rejected rows" % i)
                for line in c.matching(r"action: progreso"):
                    m = re.search(r"enviadas: (\d+) \| total: (\d+)$", line)
                    check(m and int(m.group(1)) <= int(m.group(2)) == len(expected[i]),
                          "bad progress line %r" % line)
        finally:
            stop_server(srv)
        rows = storage_rows(srv.storage_path)
        check(len(rows) == 78697, "bets.csv holds %d rows, want 78697" % len(rows))
        by_agency = {i: [] for i in range(1, 6)}
        for row in rows:
            by_agency[int(row[0])].append(row[1:])
        for i in range(1, 6):
            check(by_agency[i] == expected[i],
                  "agency %d: stored rows differ from its dataset (%d vs %d rows)"
                  % (i, len(by_agency[i]), len(expected[i])))


def write_long_names_dataset(path, rows):
    """Rows whose names are long, so that 8 KiB, not maxAmount, closes batches."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        for i in range(rows):
            first = ("Nombre%d " % i) + "\u00d1" * (20 + i % 100)  # 2 bytes each in UTF-8
            last = "Apellido" + "x" * (i % 200)
            f.write("%s,%s,%d,1990-01-%02d,%d\r\n" % (first, last, 10000000 + i, 1 + i % 28, i))
    return dataset_rows(path)


def test_frames_never_exceed_8k():
    """4. No frame over 8 KiB reaches the server: measured by a proxy in front of it,
    and the server itself refuses bodies over 8192 - 5 bytes (MAX_FRAME_BYTES)."""
    with h.tmpdir() as d:
        rows = write_long_names_dataset(os.path.join(d, "long.csv"), 600)
        link_datasets(d)
        srv = h.start_server(d, env={"AGENCIES": 2, "MAX_FRAME_BYTES": FRAME_LIMIT - 5})
        proxies = [FrameProxy(srv.port), FrameProxy(srv.port)]
        try:
            # Agency 1: long rows and an unlimited maxAmount: the 8 KiB cap decides.
            c1 = start_client(d, client_env(proxies[0].port, 1, CLI_DATASET="long.csv",
                                            CLI_BATCH_MAXAMOUNT=1000000), name="client1")
            # Agency 2: the bundled dataset with the default maxAmount (50).
            c2 = start_client(d, client_env(proxies[1].port, 2), name="client2")
            expect_exit(c1, 0, 60)
            expect_exit(c2, 0, 60)
            big, small = proxies[0].new_bets(), proxies[1].new_bets()
        finally:
            for p in proxies:
                p.close()
            stop_server(srv)
        check(sum(n for _, n in big) == len(rows), "agency 1 sent %d bets" % sum(n for _, n in big))
        sizes = [size for size, _ in big]
        check(max(sizes) <= FRAME_LIMIT, "a frame of %d bytes reached the server" % max(sizes))
        # Batches are filled: every one but the last is within one bet of the limit
        # (a bet here encodes to < 700 bytes).
        check(all(s > FRAME_LIMIT - 700 for s in sizes[:-1]), "underfilled batches: %r" % sizes)
        n2 = len(dataset_rows(os.path.join(d, "datasets", "agency-2.csv")))
        check(sum(n for _, n in small) == n2, "agency 2 sent %d bets" % sum(n for _, n in small))
        check(max(size for size, _ in small) <= FRAME_LIMIT, "agency 2 frame over 8 KiB")
        check(all(n == 50 for _, n in small[:-1]), "agency 2 batches not of 50 bets")
        stored = storage_rows(srv.storage_path)
        check(len(stored) == len(rows) + n2, "stored %d rows" % len(stored))
        check(srv.count(r"result: fail") == 0, "server logged a failure:\n" + srv.tail())


def test_sigterm_mid_dataset():
    """5. SIGTERM in the middle of the dataset: exit 0, only whole batches stored.

    A proxy lets 3 batches of 10 bets through, then half of the 4th, and holds
    the rest; the client, with a window of 4, has more batches out when the
    signal arrives."""
    with h.tmpdir() as d:
        link_datasets(d)
        srv = h.start_server(d, env={"AGENCIES": 1})
        proxy = FrameProxy(srv.port, hold_after=3, partial=700)
        try:
            c = start_client(d, client_env(proxy.port, 1, CLI_BATCH_MAXAMOUNT=10,
                                           CLI_BATCH_WINDOW=4))
            proxy.wait_held()
            srv.wait_count(r"action: apuesta_recibida \| result: success \| cantidad: 10", 3)
            # The progress timer reports the 3 confirmed batches within a second.
            c.wait_line(r"action: progreso \| result: in_progress \| enviadas: 30 \| total: 26936")
            c.signal(signal.SIGTERM)
            expect_exit(c, 0)
            tail = [(a, r, f) for a, r, f in c.actions()][-5:]
            check([(a, r) for a, r, _ in tail] == [
                ("signal", "success"), ("apuestas_enviadas", "fail"),
                ("close_connection", "success"), ("close_dataset", "success"),
                ("shutdown", "success")], "closing lines: %r" % tail)
            check(tail[1][2]["cantidad"] == "30" and tail[1][2]["batches"] == "3",
                  "interrupted line %r" % (tail[1],))
        finally:
            proxy.close()
            stop_server(srv)
        rows = storage_rows(srv.storage_path)
        expected = dataset_rows(os.path.join(d, "datasets", "agency-1.csv"))
        check(len(rows) == 30, "stored %d rows, want the 3 whole batches (30)" % len(rows))
        check([r[1:] for r in rows] == expected[:30] and all(r[0] == "1" for r in rows),
              "stored rows are not the dataset's first 30")


def test_server_starts_late():
    """6. The server starts 2 s after its clients: they retry and still succeed."""
    with h.tmpdir() as d:
        link_datasets(d)
        port = h.free_port()
        t0 = time.monotonic()
        clients = {i: start_client(d, client_env(port, i), name="client%d" % i) for i in (1, 2)}
        for c in clients.values():
            c.wait_line(r"action: connect \| result: in_progress \| attempt: 1 \| error: ")
        # Starting the server 2 s after the clients is the scenario under test,
        # not synchronisation.
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
        check(all(c.count(r"action: connect \| result: success") == 0 for c in clients.values()),
              "a client connected before the server existed")
        srv = h.start_server(d, env={"AGENCIES": 2, "SERVER_PORT": port})
        try:
            for i, c in clients.items():
                expect_exit(c, 0, 60)
                check(c.count(r"action: connect \| result: in_progress") >= 2,
                      "client %d did not retry" % i)
                check(action_fields(c, "consulta_ganadores")
                      == [{"cant_ganadores": str(WINNERS_BY_AGENCY[i])}],
                      "agency %d winners" % i)
        finally:
            stop_server(srv)


def test_malformed_rows():
    """7. Malformed rows are reported with their line numbers; the rest are stored."""
    with h.tmpdir() as d:
        path = os.path.join(d, "agency.csv")
        with open(path, "wb") as f:
            f.write(b"Ana,Perez,11111111,1990-01-02,1\r\n"  # 1
                    b"Bruno,Gomez,22222222,1991-02-03\r\n"  # 2: four fields
                    b"\"Carla, la\",\"D'\"\"Angelo\",33333333,1992-03-04,7574\n"  # 3: quoted
                    b"Dario,Diaz,44444444,2023-02-30,4\r\n"  # 4: no such date
                    b"\"Eva\nMaria\",Ruiz,55555555,1993-04-05,5\r\n"  # 5-6: LF in a name
                    b"Fede,Lopez,66666666,1994-05-06,seis\r\n"  # 7: number
                    b"Hugo,Paz,88888888,1996-07-08,8\r\n"  # 8
                    b"Gus,\"Sosa,77777777,1995-06-07,7\r\n")  # 9: quote never closed
        srv = h.start_server(d, env={"AGENCIES": 1})
        try:
            c = start_client(d, client_env(srv.port, 1, CLI_DATASET="agency.csv"))
            rc = c.wait_exit(30)
            check(rc == 3, "exit code %r, want 3; output:\n%s" % (rc, c.tail()))
            rejected = action_fields(c, "apuesta_rechazada", "fail")
            check([(f["file"], f["line"]) for f in rejected]
                  == [("agency.csv", str(n)) for n in (2, 4, 5, 7, 9)],
                  "rejected rows %r" % rejected)
            check(all(f["error"] for f in rejected), "a rejection without a reason")
            check("2023-02-30" in rejected[1]["error"], "reason %r" % rejected[1]["error"])
            check(action_fields(c, "apuestas_enviadas")[0]["cantidad"] == "3", "sent count")
            check(action_fields(c, "apuestas_rechazadas", "fail") == [{"cantidad": "5"}],
                  "rejected summary")
            check(action_fields(c, "consulta_ganadores") == [{"cant_ganadores": "1"}],
                  "winners")
        finally:
            stop_server(srv)
        rows = storage_rows(srv.storage_path)
        check(rows == [["1", "Ana", "Perez", "11111111", "1990-01-02", "1"],
                       ["1", "Carla, la", "D'\"Angelo", "33333333", "1992-03-04", "7574"],
                       ["1", "Hugo", "Paz", "88888888", "1996-07-08", "8"]],
              "stored rows %r" % rows)


def test_dataset_with_bom():
    """A dataset saved as "UTF-8 with BOM": the mark is skipped, not stored as
    part of the first name, and a quoted first field still parses."""
    with h.tmpdir() as d:
        path = os.path.join(d, "agency.csv")
        with open(path, "wb") as f:
            f.write(b"\xef\xbb\xbf\"Ana\",Perez,11111111,1990-01-02,1\r\n"
                    b"Hugo,Paz,88888888,1996-07-08,8\r\n")
        srv = h.start_server(d, env={"AGENCIES": 1})
        try:
            c = start_client(d, client_env(srv.port, 1, CLI_DATASET="agency.csv"))
            rc = c.wait_exit(30)
            check(rc == 0, "exit code %r; output:\n%s" % (rc, c.tail()))
            check(action_fields(c, "apuestas_enviadas")[0]["cantidad"] == "2", "sent count")
        finally:
            stop_server(srv)
        rows = storage_rows(srv.storage_path)
        check(rows == [["1", "Ana", "Perez", "11111111", "1990-01-02", "1"],
                       ["1", "Hugo", "Paz", "88888888", "1996-07-08", "8"]],
              "stored rows %r" % rows)


if __name__ == "__main__":
    h.run_tests([
        test_echo_three_clients,
        test_env_bet_winner,
        test_five_datasets,
        test_frames_never_exceed_8k,
        test_sigterm_mid_dataset,
        test_server_starts_late,
        test_malformed_rows,
        test_dataset_with_bom,
    ])
