#!/usr/bin/env python3
"""The client's faults and edges: giving up on connecting, a server that closes,
answers BETS_RECV_FAIL or garbage, SIGTERM while connecting or parked, bad
configuration and missing bets. Misbehaving servers are scripted in Python."""

import os
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from client_lib import FakeServer, link_datasets  # noqa: E402
from harness import check  # noqa: E402

ENV_BET = {"NOMBRE": "Ana", "APELLIDO": "Perez", "DOCUMENTO": "30904465",
           "NACIMIENTO": "1999-03-17", "NUMERO": "1234"}


def client_env(port, agency=1, **extra):
    env = {"CLI_ID": agency, "CLI_SERVER_ADDRESS": "127.0.0.1:%d" % port}
    env.update(extra)
    return env


def start_client(workdir, env, args=(), name="client"):
    return h.start_client(workdir, env=env, args=list(args), name=name)


def expect_exit(proc, want, timeout=30.0):
    rc = proc.wait_exit(timeout)
    check(rc == want, "%s exit code %r, want %r; output:\n%s" % (proc.name, rc, want, proc.tail()))
    proc.actions()  # every action line well formed


def fields(proc, action, result):
    return [f for a, r, f in proc.actions() if a == action and r == result]


def decode_bets(body):
    """NEW_BETS body -> list of dicts (checks the structure strictly)."""
    pos = 0

    def i32():
        nonlocal pos
        (v,) = struct.unpack_from("<i", body, pos)
        pos += 4
        return v

    def string():
        nonlocal pos
        n = i32()
        s = body[pos:pos + n].decode("utf-8")
        pos += n
        return s

    bets = []
    for _ in range(i32()):
        bets.append(dict((string(), string()) for _ in range(i32())))
    check(pos == len(body), "trailing bytes in NEW_BETS")
    return bets


def test_connect_gives_up():
    with h.tmpdir() as d:
        port = h.free_port()
        c = start_client(d, client_env(port, CLI_CONNECT_TIMEOUT="500ms", **ENV_BET))
        expect_exit(c, 1)
        check(c.count(r"action: connect \| result: in_progress \| attempt: \d+ \| error: connect: "
                      r"Connection refused") >= 2, "no retries logged:\n" + c.tail())
        failed = fields(c, "connect", "fail")
        check(len(failed) == 1 and "refused" in failed[0]["error"], "fail line %r" % failed)


def test_unresolvable_host_retries():
    with h.tmpdir() as d:
        c = start_client(d, {"CLI_ID": 1, "CLI_SERVER_ADDRESS": "no-such-host.invalid:12345",
                             "CLI_CONNECT_TIMEOUT": "200ms", **ENV_BET})
        expect_exit(c, 1)
        check(c.count(r"action: connect \| result: in_progress \| attempt: 1 \| error: resolve: ")
              == 1, "resolve failure not logged:\n" + c.tail())


def test_protocol_with_scripted_server():
    """What the client puts on the wire: NEW_BETS maps, FINISHED, and WINNERS read back."""
    got = {"bets": [], "frames": 0}

    def script(conn):
        while True:
            op, body = conn.recv_frame()
            if op == h.OP_NEW_BETS:
                got["bets"] += decode_bets(body)
                got["frames"] += 1
                conn.send(h.frame(h.OP_BETS_RECV_SUCCESS, b""))
            else:
                check(op == h.OP_FINISHED and body == h.enc_int(7), "FINISHED %r %r" % (op, body))
                conn.send(h.frame(h.OP_WINNERS, h.enc_int(2) + h.enc_str("1") + h.enc_str("22")))
                conn.wait_closed()
                return

    with h.tmpdir() as d:
        with open(os.path.join(d, "bets.csv"), "w", newline="") as f:
            for i in range(7):
                f.write("N\u00famero %d,\"O'Hara, \"\"Jr\"\"\",%d,2000-02-29,%d\n" % (i, 100 + i, i))
        srv = FakeServer(script)
        c = start_client(d, client_env(srv.port, 7, CLI_DATASET="bets.csv", CLI_BATCH_MAXAMOUNT=3))
        expect_exit(c, 0)
        srv.join()
        check(got["frames"] == 3, "sent %d frames for 7 bets of 3" % got["frames"])
        want = [{"AGENCIA": "7", "NOMBRE": "N\u00famero %d" % i, "APELLIDO": "O'Hara, \"Jr\"",
                 "DOCUMENTO": str(100 + i), "NACIMIENTO": "2000-02-29", "NUMERO": str(i)}
                for i in range(7)]
        check(got["bets"] == want, "bets on the wire %r" % got["bets"][:2])
        check(fields(c, "consulta_ganadores", "success") == [{"cant_ganadores": "2"}], "winners")
        check(fields(c, "apuestas_enviadas", "success") == [{"cantidad": "7", "batches": "3"}],
              "apuestas_enviadas")


def test_server_closes_mid_dataset():
    def script(conn):
        # The client keeps 16 batches out; the 17th comes once it has read the
        # answer to the first. Then nothing more is coming: close cleanly.
        for _ in range(16):
            conn.recv_frame()
        conn.send(h.frame(h.OP_BETS_RECV_SUCCESS, b""))
        conn.recv_frame()

    with h.tmpdir() as d:
        link_datasets(d)
        srv = FakeServer(script)
        c = start_client(d, client_env(srv.port, 1))
        expect_exit(c, 1)
        srv.join()
        failed = fields(c, "apuestas_enviadas", "fail")
        check(len(failed) == 1 and failed[0]["error"] == "server closed the connection",
              "fail line %r" % failed)
        check(failed[0]["cantidad"] == "50" and failed[0]["batches"] == "1", "counts %r" % failed)
        check(c.count(r"action: close_dataset \| result: success") == 1, "dataset not closed")


def test_bets_recv_fail_on_a_batch():
    def script(conn):
        conn.recv_frame()
        conn.send(h.frame(h.OP_BETS_RECV_SUCCESS, b""))
        conn.recv_frame()
        conn.send(h.frame(h.OP_BETS_RECV_FAIL, b""))
        conn.wait_closed()

    with h.tmpdir() as d:
        link_datasets(d)
        srv = FakeServer(script)
        c = start_client(d, client_env(srv.port, 1))
        expect_exit(c, 1)
        srv.join()
        failed = fields(c, "apuestas_enviadas", "fail")
        check(len(failed) == 1 and "batch 2 (50 bets, lines 51-100)" in failed[0]["error"]
              and "BETS_RECV_FAIL" in failed[0]["error"], "fail line %r" % failed)


def test_bets_recv_fail_on_env_bet():
    def script(conn):
        op, body = conn.recv_frame()
        check(op == h.OP_NEW_BETS and len(decode_bets(body)) == 1, "one bet expected")
        conn.send(h.frame(h.OP_BETS_RECV_FAIL, b""))
        conn.wait_closed()

    with h.tmpdir() as d:
        srv = FakeServer(script)
        c = start_client(d, client_env(srv.port, 3, **ENV_BET))
        expect_exit(c, 1)
        srv.join()
        failed = fields(c, "apuesta_enviada", "fail")
        check(len(failed) == 1 and failed[0]["dni"] == "30904465"
              and failed[0]["numero"] == "1234" and failed[0]["error"], "fail line %r" % failed)
        check(not fields(c, "apuesta_enviada", "success"), "a success line too")


def test_garbage_from_server():
    def script(conn):
        conn.recv_frame()
        conn.send(b"\x63\x00\x00\x00\x00")  # unknown opcode 99
        conn.wait_closed()

    with h.tmpdir() as d:
        srv = FakeServer(script)
        c = start_client(d, client_env(srv.port, 1, **ENV_BET))
        expect_exit(c, 1)
        srv.join()
        check(len(fields(c, "apuesta_enviada", "fail")) == 1, "no fail line:\n" + c.tail())


def test_echo_mismatch():
    def script(conn):
        op, body = conn.recv_frame()
        check(op == h.OP_ECHO and body == "[CLIENT 4] Message N\u00b01".encode(), "body %r" % body)
        conn.send(h.frame(h.OP_ECHO, body + b"!"))
        conn.wait_closed()

    with h.tmpdir() as d:
        srv = FakeServer(script)
        c = start_client(d, client_env(srv.port, 4, CLI_MODE="echo"))
        expect_exit(c, 1)
        srv.join()
        failed = fields(c, "receive_message", "fail")
        check(len(failed) == 1 and failed[0]["client_id"] == "4", "fail line %r" % failed)
        check(not fields(c, "loop_finished", "success"), "loop_finished after a mismatch")


def test_sigterm_while_connecting():
    with h.tmpdir() as d:
        c = start_client(d, client_env(h.free_port(), **ENV_BET))
        c.wait_line(r"action: connect \| result: in_progress")
        c.signal(signal.SIGTERM)
        expect_exit(c, 0)
        check(c.lines[-1].endswith("action: shutdown | result: success"), "last line " + c.lines[-1])


def test_sigterm_while_parked():
    """Waiting for the other agencies: SIGTERM closes the connection, exit 0,
    and valgrind (TP0_WRAPPER) sees no leak."""
    with h.tmpdir() as d:
        srv = h.start_server(d, env={"AGENCIES": 2})
        try:
            c = start_client(d, client_env(srv.port, 1, **ENV_BET))
            c.wait_line(r"action: apuesta_enviada \| result: success")
            srv.wait_line(r"action: finished \| result: in_progress \| .*agency: 1")
            c.signal(signal.SIGTERM)
            expect_exit(c, 0)
            tail = [(a, r) for a, r, _ in c.actions()][-3:]
            check(tail == [("signal", "success"), ("close_connection", "success"),
                           ("shutdown", "success")], "closing lines %r" % tail)
        finally:
            h.stop(srv)


def test_config_file_and_errors():
    with h.tmpdir() as d:
        srv = FakeServer(lambda conn: None)
        path = os.path.join(d, "client.yaml")
        with open(path, "w") as f:
            f.write("id: 6\nmode: echo\nserver:\n  address: \"127.0.0.1:%d\"\nloop:\n  amount: 0\n"
                    "  period: 90s\nlog:\n  level: warning\nbatch:\n  maxAmount: 12\n" % srv.port)
        c = start_client(d, {}, args=[path])
        expect_exit(c, 0)
        srv.join()
        check(c.lines[0].endswith(
            "action: config | result: success | client_id: 6 | server_address: 127.0.0.1:%d | "
            "loop_amount: 0 | loop_period: 1m30s | log_level: warning | batch_max_amount: 12"
            % srv.port), "config line %r" % c.lines[0])
        # log.level warning: INFO lines such as loop_finished are not printed.
        check(c.count(r"loop_finished") == 0, "INFO line at level WARNING")

        cases = [
            ({"CLI_ID": 1, "CLI_LOOP_PERIOD": "5 seconds"}, [], "loop.period"),
            ({"CLI_ID": 1, "CLI_BATCH_MAXAMOUNT": "0"}, [], "batch.maxAmount"),
            ({"CLI_ID": "x"}, [], "id"),
            ({}, [], "id"),
            ({"CLI_ID": 1}, [os.path.join(d, "missing.yaml")], "config file "),
        ]
        for env, args, key in cases:
            c = start_client(d, env, args=args)
            expect_exit(c, 2)
            failed = fields(c, "config", "fail")
            check(len(failed) == 1 and failed[0]["error"].startswith(key),
                  "error for %s: %r" % (key, failed))


def test_no_bets_to_send():
    with h.tmpdir() as d:
        port = h.free_port()
        cases = [
            ({}, "does not exist and the environment has no bet"),
            ({"CLI_DATASET": "nope.csv", **ENV_BET}, "nope.csv"),
            ({"NOMBRE": "Ana", "NUMERO": "1"}, "missing APELLIDO, DOCUMENTO, NACIMIENTO"),
            (dict(ENV_BET, NACIMIENTO="1999-02-30"), "1999-02-30"),
            (dict(ENV_BET, NUMERO="12x"), "NUMERO"),
        ]
        for extra, fragment in cases:
            c = start_client(d, client_env(port, 1, **extra))
            expect_exit(c, 2)
            failed = fields(c, "open_dataset", "fail")
            check(len(failed) == 1 and fragment in failed[0]["error"],
                  "want %r in %r" % (fragment, failed))
            check(c.count(r"action: connect") == 0, "connected despite having no bets")


def test_huge_connect_timeout():
    """The longest duration Go accepts as connect.timeout: the deadline saturates
    instead of overflowing (UBSan aborts on signed overflow), so it keeps retrying."""
    with h.tmpdir() as d:
        c = start_client(d, client_env(h.free_port(), CLI_CONNECT_TIMEOUT="2562047h47m16s",
                                       **ENV_BET))
        c.wait_line(r"action: connect \| result: in_progress \| attempt: 2 ")
        c.signal(signal.SIGTERM)
        expect_exit(c, 0)
        check(not fields(c, "connect", "fail"), "gave up:\n" + c.tail())


def test_sigterm_while_counting_rows():
    """SIGTERM while the dataset's rows are being counted (before the event loop
    runs): the signal is held until the loop starts, then a clean stop, exit 0."""
    with h.tmpdir() as d:
        with open(os.path.join(d, "big.csv"), "w") as f:
            f.write("Ana,Paz,30904465,1999-03-17,7574\n" * 1000000)
        c = start_client(d, client_env(h.free_port(), CLI_DATASET="big.csv"))
        c.wait_line(r"action: config \| result: success")
        c.signal(signal.SIGTERM)
        expect_exit(c, 0)
        check(c.count(r"action: close_dataset \| result: success") == 1, "dataset not closed")
        check(c.lines[-1].endswith("action: shutdown | result: success"), "last line " + c.lines[-1])


if __name__ == "__main__":
    h.run_tests([
        test_connect_gives_up,
        test_unresolvable_host_retries,
        test_protocol_with_scripted_server,
        test_server_closes_mid_dataset,
        test_bets_recv_fail_on_a_batch,
        test_bets_recv_fail_on_env_bet,
        test_garbage_from_server,
        test_echo_mismatch,
        test_sigterm_while_connecting,
        test_huge_connect_timeout,
        test_sigterm_while_counting_rows,
        test_sigterm_while_parked,
        test_config_file_and_errors,
        test_no_bets_to_send,
    ])
