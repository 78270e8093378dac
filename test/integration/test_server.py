#!/usr/bin/env python3
"""Loopback tests of the real server binary: ECHO, batches, the raffle, shutdown."""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

PREFIX_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) {1,8}(.*)$")


def messages(proc, pattern=None):
    """Every log line without its timestamp, as 'LEVEL message'; checks the prefix."""
    out = []
    for line in list(proc.lines):
        m = PREFIX_RE.match(line)
        check(m is not None, "log line without the standard prefix: %r" % line)
        check(len(line) - len(m.group(2)) == 20 + 8 + 1, "level not padded to 8: %r" % line)
        msg = m.group(1) + " " + m.group(2)
        if pattern is None or re.search(pattern, msg):
            out.append(msg)
    return out


def all_actions_well_formed(proc):
    proc.actions()  # raises on a malformed action line


def stop_ok(proc):
    proc.signal(signal.SIGTERM)
    rc = proc.wait_exit(10)
    check(rc == 0, "server exit code %r; output:\n%s" % (rc, proc.tail()))
    all_actions_well_formed(proc)


def read_storage(proc):
    with open(proc.storage_path, "rb") as f:
        return f.read()


def test_echo_exact_bytes():
    with h.tmpdir() as d:
        srv = h.start_server(d)
        try:
            c = h.connect(srv.port)
            body = b"hola mundo|\x00\xff" + bytes(range(256))
            c.send_frame(h.OP_ECHO, body)
            got = c.recv_exact(5 + len(body))
            check(got == h.frame(h.OP_ECHO, body), "ECHO answer differs: %r" % got[:40])
            # An empty body, and a frame split in two writes.
            c.send_raw(h.frame(h.OP_ECHO, b"")[:3])
            c.send_raw(h.frame(h.OP_ECHO, b"")[3:] + h.frame(h.OP_ECHO, b"hola mundo"))
            check(c.recv_exact(5) == h.frame(h.OP_ECHO, b""), "empty ECHO differs")
            check(c.recv_exact(15) == h.frame(h.OP_ECHO, b"hola mundo"), "second ECHO differs")
            srv.wait_line(r"action: receive_message \| result: success \| ip: 127\.0\.0\.1 "
                          r"\| msg: hola mundo$")
            c.close()
        finally:
            stop_ok(srv)


def test_valid_batch_is_stored_and_logged():
    bets = [
        h.bet(1, "Ana María", 'Pérez, "la tana"', 30904465, "1999-03-17", 7574),
        h.bet(1, "Juan", "Gómez", 12345678, "1980-02-29", 1),
        h.bet(1, "Eva", "Díaz", 1, "2000-12-31", 0),
    ]
    with h.tmpdir() as d:
        srv = h.start_server(d)
        try:
            c = h.connect(srv.port)
            c.send_frame(h.OP_NEW_BETS, h.new_bets_body(bets))
            check(c.recv_frame() == (h.OP_BETS_RECV_SUCCESS, b""), "no BETS_RECV_SUCCESS")
            # The answer comes after the fsync: the rows are on disk now.
            want = ('1,Ana María,"Pérez, ""la tana""",30904465,1999-03-17,7574\r\n'
                    "1,Juan,Gómez,12345678,1980-02-29,1\r\n"
                    "1,Eva,Díaz,1,2000-12-31,0\r\n").encode("utf-8")
            got = read_storage(srv)
            check(got == want, "bets.csv is %r" % got)
            srv.wait_line(r"apuesta_recibida \| result: success")
            lines = messages(srv, r"action: apuesta_")
            check(lines == [
                "INFO action: apuesta_almacenada | result: success | dni: 30904465 | numero: 7574",
                "INFO action: apuesta_almacenada | result: success | dni: 12345678 | numero: 1",
                "INFO action: apuesta_almacenada | result: success | dni: 1 | numero: 0",
                "INFO action: apuesta_recibida | result: success | cantidad: 3",
            ], "log lines: %r" % lines)
            c.close()
        finally:
            stop_ok(srv)
        first = messages(srv)[:3]
        check(first[0].startswith("INFO action: config | result: success | port: %d | "
                                  "listen_backlog: 5 | logging_level: INFO | agencies: 5 | "
                                  "storage: %s" % (srv.port, srv.storage_path)),
              "config line: %r" % first[0])
        check(first[1] == "INFO action: storage_open | result: success | path: %s | "
                          "dropped_bytes: 0" % srv.storage_path, "storage line: %r" % first[1])
        check(first[2] == "INFO action: listen | result: success | port: %d" % srv.port,
              "listen line: %r" % first[2])


def test_bad_batch_fails_and_connection_stays_usable():
    good = h.bet(2, "Ana", "Pérez", 100, "1999-03-17", 7574)
    bad_date = h.bet(2, "Juan", "Gómez", 101, "2023-02-30", 1)
    with h.tmpdir() as d:
        srv = h.start_server(d)
        try:
            c = h.connect(srv.port)
            # An invalid bet anywhere rejects the whole batch.
            c.send_frame(h.OP_NEW_BETS, h.new_bets_body([good, bad_date]))
            check(c.recv_frame() == (h.OP_BETS_RECV_FAIL, b""), "no BETS_RECV_FAIL")
            srv.wait_line(r"action: apuesta_recibida \| result: fail \| cantidad: 2 \| "
                          r"error: bet 2: birthdate 2023-02-30 is not a calendar date$")
            # A map with a missing key: the body does not parse, the frame is sane.
            missing = [(k, v) for k, v in good.items() if k != "NUMERO"]
            c.send_frame(h.OP_NEW_BETS, h.enc_int(1) + h.enc_map(missing))
            check(c.recv_frame() == (h.OP_BETS_RECV_FAIL, b""), "no FAIL for a missing key")
            srv.wait_line(r"action: apuesta_recibida \| result: fail \| cantidad: 1 \| "
                          r"error: bet 1: missing key NUMERO$")
            # Bets of an agency beyond AGENCIES are refused too.
            c.send_frame(h.OP_NEW_BETS, h.new_bets_body([h.bet(6, "A", "B", 1, "1990-01-01", 1)]))
            check(c.recv_frame() == (h.OP_BETS_RECV_FAIL, b""), "no FAIL for agency 6")
            srv.wait_line(r"error: bet 1: agency 6 is out of range 1\.\.5$")
            check(read_storage(srv) == b"", "a rejected batch reached bets.csv")
            # Still usable; and a FAIL never overtakes an earlier SUCCESS.
            c.send_raw(h.frame(h.OP_NEW_BETS, h.new_bets_body([good]))
                       + h.frame(h.OP_NEW_BETS, h.new_bets_body([bad_date]))
                       + h.frame(h.OP_ECHO, b"ping"))
            check(c.recv_frame() == (h.OP_BETS_RECV_SUCCESS, b""), "first answer not SUCCESS")
            check(c.recv_frame() == (h.OP_BETS_RECV_FAIL, b""), "second answer not FAIL")
            check(c.recv_frame() == (h.OP_ECHO, b"ping"), "third answer not the ECHO")
            check(read_storage(srv) == "2,Ana,Pérez,100,1999-03-17,7574\r\n".encode(),
                  "bets.csv: %r" % read_storage(srv))
            c.close()
        finally:
            stop_ok(srv)


def test_protocol_errors_close_the_connection():
    with h.tmpdir() as d:
        srv = h.start_server(d, env={"MAX_FRAME_BYTES": "1024"})
        try:
            c = h.connect(srv.port)
            c.send_raw(bytes([9]) + h.enc_int(0))
            c.expect_closed()
            srv.wait_line(r"action: receive_message \| result: fail \| ip: 127\.0\.0\.1 \| "
                          r"error: unknown opcode 9$")
            c = h.connect(srv.port)
            c.send_raw(bytes([h.OP_ECHO]) + h.enc_int(1025))
            c.expect_closed()
            srv.wait_line(r"result: fail \| ip: 127\.0\.0\.1 \| "
                          r"error: frame length 1025 exceeds the cap of 1024$")
            # A server-to-client opcode from a client.
            c = h.connect(srv.port)
            c.send_frame(h.OP_WINNERS, h.enc_int(0))
            c.expect_closed()
            srv.wait_line(r"result: fail \| ip: 127\.0\.0\.1 \| error: opcode 4 \(WINNERS\)")
            # The server keeps serving.
            c = h.connect(srv.port)
            c.send_frame(h.OP_ECHO, b"still here")
            check(c.recv_frame() == (h.OP_ECHO, b"still here"), "no ECHO after errors")
            c.close()
        finally:
            stop_ok(srv)


def test_raffle_with_two_agencies():
    winners1 = ["30904465", "11"]
    winners2 = ["22"]
    bets1 = [h.bet(1, "A", "B", winners1[0], "1990-01-01", 7574),
             h.bet(1, "C", "D", 12, "1990-01-01", 7573),
             h.bet(1, "E", "F", winners1[1], "1990-01-01", 7574)]
    bets2 = [h.bet(2, "G", "H", winners2[0], "1990-01-01", 7574),
             h.bet(2, "I", "J", 23, "1990-01-01", 1)]
    with h.tmpdir() as d:
        srv = h.start_server(d, env={"AGENCIES": "2"})
        try:
            c1 = h.connect(srv.port)
            c2 = h.connect(srv.port)
            c1.send_frame(h.OP_NEW_BETS, h.new_bets_body(bets1))
            c2.send_frame(h.OP_NEW_BETS, h.new_bets_body(bets2))
            check(c1.recv_frame()[0] == h.OP_BETS_RECV_SUCCESS, "c1 batch not accepted")
            check(c2.recv_frame()[0] == h.OP_BETS_RECV_SUCCESS, "c2 batch not accepted")

            c1.send_frame(h.OP_FINISHED, h.finished_body(1))
            srv.wait_line(r"action: finished \| result: in_progress \| ip: 127\.0\.0\.1 \| "
                          r"agency: 1 \| finished: 1/2$")
            # Parked: no answer before the raffle, and no raffle yet.
            c1.expect_silence(0.3)
            check(srv.count(r"action: sorteo") == 0, "raffle before the last FINISHED")
            # The finished agency may not send more bets; agency 2 still may.
            c3 = h.connect(srv.port)
            c3.send_frame(h.OP_NEW_BETS, h.new_bets_body([h.bet(1, "K", "L", 5, "1990-01-01", 7574)]))
            check(c3.recv_frame()[0] == h.OP_BETS_RECV_FAIL, "bet of a finished agency accepted")
            srv.wait_line(r"error: bet 1: agency 1 already finished$")

            c2.send_frame(h.OP_FINISHED, h.finished_body(2))
            op, body = c1.recv_frame()
            check(op == h.OP_WINNERS, "c1 got opcode %d" % op)
            check(sorted(h.decode_winners(body)) == sorted(winners1), "c1 winners %r" % body)
            op, body = c2.recv_frame()
            check(op == h.OP_WINNERS, "c2 got opcode %d" % op)
            check(h.decode_winners(body) == winners2, "c2 winners %r" % body)
            c1.expect_closed()
            c2.expect_closed()
            srv.wait_line(r"action: sorteo \| result: success$")

            # After the raffle: FINISHED is answered at once, bets are refused.
            c3.send_frame(h.OP_NEW_BETS, h.new_bets_body([h.bet(2, "K", "L", 5, "1990-01-01", 1)]))
            check(c3.recv_frame()[0] == h.OP_BETS_RECV_FAIL, "bet after the raffle accepted")
            srv.wait_line(r"error: bet 1: raffle already done$")
            c3.send_frame(h.OP_FINISHED, h.finished_body(2))
            op, body = c3.recv_frame()
            check(op == h.OP_WINNERS and h.decode_winners(body) == winners2, "late FINISHED")
            c3.expect_closed()
            check(srv.count(r"action: sorteo") == 1, "raffle count %d" % srv.count("sorteo"))
        finally:
            stop_ok(srv)
        check(srv.count(r"action: sorteo \| result: success") == 1, "sorteo not exactly once")


def test_bad_and_duplicate_finished():
    with h.tmpdir() as d:
        srv = h.start_server(d, env={"AGENCIES": "3"})
        try:
            for agency in (0, -1, 4):
                c = h.connect(srv.port)
                c.send_frame(h.OP_FINISHED, h.finished_body(agency))
                c.expect_closed()
                srv.wait_line(r"action: finished \| result: fail \| ip: 127\.0\.0\.1 \| "
                              r"error: agency %d is out of range 1\.\.3$" % agency)
            c1 = h.connect(srv.port)
            c1.send_frame(h.OP_FINISHED, h.finished_body(1))
            srv.wait_line(r"finished \| result: in_progress \| .*agency: 1 ")
            dup = h.connect(srv.port)
            dup.send_frame(h.OP_FINISHED, h.finished_body(1))
            dup.expect_closed()
            srv.wait_line(r"action: finished \| result: fail \| .*error: agency 1 already finished$")
            # A parked agency that goes away is logged; the agency stays finished.
            c1.close()
            srv.wait_line(r"action: finished \| result: fail \| ip: 127\.0\.0\.1 \| agency: 1 \| "
                          r"error: connection closed while waiting for the raffle$")
            c2 = h.connect(srv.port)
            c2.send_frame(h.OP_FINISHED, h.finished_body(2))
            c3 = h.connect(srv.port)
            c3.send_frame(h.OP_FINISHED, h.finished_body(3))
            for c in (c2, c3):
                op, body = c.recv_frame()
                check(op == h.OP_WINNERS and h.decode_winners(body) == [], "empty WINNERS")
                c.expect_closed()
            srv.wait_line(r"action: sorteo \| result: success$")
        finally:
            stop_ok(srv)
        check(srv.count(r"action: sorteo \| result: success") == 1, "sorteo not once")


def test_sigterm_shuts_down_cleanly():
    with h.tmpdir() as d:
        srv = h.start_server(d, env={"AGENCIES": "2"})
        c1 = h.connect(srv.port)
        c1.send_frame(h.OP_ECHO, b"x")
        check(c1.recv_frame() == (h.OP_ECHO, b"x"), "no ECHO")
        c2 = h.connect(srv.port)
        c2.send_frame(h.OP_FINISHED, h.finished_body(1))  # a parked connection too
        srv.wait_line(r"finished \| result: in_progress")
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(10)
        check(rc == 0, "exit code %r" % rc)
        c1.expect_closed()
        c2.expect_closed()
        tail = messages(srv)
        i = tail.index("INFO action: signal | result: success | signal: SIGTERM")
        check(tail[i + 1:] == [
            "INFO action: close_connection | result: success | ip: 127.0.0.1",
            "INFO action: close_connection | result: success | ip: 127.0.0.1",
            "INFO action: close_listener | result: success",
            "INFO action: close_storage | result: success",
            "INFO action: shutdown | result: success",
        ], "shutdown lines: %r" % tail[i:])
        all_actions_well_formed(srv)


def test_bad_config_exits_2():
    with h.tmpdir() as d:
        srv = h.start_server(d, env={"AGENCIES": "many"}, wait=False)
        rc = srv.wait_exit(10)
        check(rc == 2, "exit code %r" % rc)
        srv.wait_line(r"action: config \| result: fail \| error: environment AGENCIES: 'many' "
                      r"is not an integer in 1\.\.100000$")
        ini = os.path.join(d, "config.ini")
        with open(ini, "w") as f:
            f.write("[DEFAULT]\nSERVER_PORT = 12345\nSERVER_LISTEN_BACKLOG = -3\n")
        env = h._clean_env({})
        proc = subprocess.run(h.WRAPPER + [os.path.join(h.BIN_DIR, "server"), ini], cwd=d, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=10 * h.SLOW)
        check(proc.returncode == 2, "exit code %r" % proc.returncode)
        check(("error: %s line 3: SERVER_LISTEN_BACKLOG: '-3' is not an integer in 1..65535"
               % ini).encode() in proc.stdout, "message: %r" % proc.stdout)


if __name__ == "__main__":
    h.run_tests([
        test_echo_exact_bytes,
        test_valid_batch_is_stored_and_logged,
        test_bad_batch_fails_and_connection_stays_usable,
        test_protocol_errors_close_the_connection,
        test_raffle_with_two_agencies,
        test_bad_and_duplicate_finished,
        test_sigterm_shuts_down_cleanly,
        test_bad_config_exits_2,
    ])
