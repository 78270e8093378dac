"""Adversarial peers against the real server binary, over loopback.

Every case checks four things: the server's log line with its reason, the
answer (BETS_RECV_FAIL) or the close, that the server still serves a fresh
connection (ECHO round trip), and, after a clean SIGTERM, that the storage file
holds exactly the bets that were confirmed.
"""

import contextlib
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from adv_lib import (  # noqa: E402
    PipelinedSender,
    chunks,
    dataset_rows,
    echo_ok,
    raise_nofile,
    read_bets_file,
    row_of,
    send_batch,
    synthetic_bets,
    wait_until,
)
from harness import (  # noqa: E402
    OP_BETS_RECV_FAIL,
    OP_BETS_RECV_SUCCESS,
    OP_ECHO,
    OP_FINISHED,
    OP_NEW_BETS,
    OP_WINNERS,
    SLOW,
    SOURCE_DIR,
    bet,
    check,
    connect,
    decode_winners,
    enc_int,
    enc_map,
    enc_str,
    finished_body,
    frame,
    new_bets_body,
    run_tests,
    start_client,
    start_server,
    stop,
    tmpdir,
)

CAP = 1048576
FAIL_BATCH = r"action: apuesta_recibida \| result: fail \| cantidad: %s \| error: %s$"


def framing_fail(reason_re):
    """The line a framing error must produce: result fail, the peer's ip, the reason."""
    return r"action: \w+ \| result: fail \| ip: 127\.0\.0\.1 \|( .* \|)? error: %s$" % reason_re


@contextlib.contextmanager
def server(env=None):
    """A server in a fresh directory; killed if the test did not stop it."""
    with tmpdir() as d:
        srv = start_server(d, env=env)
        try:
            yield srv
        finally:
            if srv.alive():
                srv.kill()


def shutdown_rows(srv):
    """SIGTERM, exit code 0 with the shutdown line, then the stored rows."""
    rc = stop(srv)
    check(rc == 0, "server exited with %r; output:\n%s" % (rc, srv.tail()))
    check(srv.count(r"action: shutdown \| result: success") == 1, "no shutdown line")
    srv.actions()  # every action line must parse like the course's tests do
    return read_bets_file(srv.storage_path)


def good_bets(agency, n, start=0):
    return synthetic_bets(agency, n, start=start)


def bad_map(**overrides):
    """A bet map (list of pairs) with some values replaced (bytes allowed)."""
    b = bet(1, "Ana", "Gómez", 30111222, "1990-05-17", 1234)
    b.update(overrides)
    return list(b.items())


def body_of_maps(maps):
    return enc_int(len(maps)) + b"".join(enc_map(m) for m in maps)


def expect_close_with(srv, conn, reason_re, start, after=None):
    """The connection is closed, the fail line names the reason and the ip."""
    got = conn.expect_closed()
    if after is not None:
        check(got.startswith(after), "before the close expected %r, got %r" % (after, got[:64]))
        got = got[len(after):]
    check(got == b"", "server answered %r before closing" % got[:64])
    srv.wait_line(framing_fail(reason_re), start=start)


# ---- framing errors: the connection is closed, others unaffected ----------

def test_framing_errors_close():
    with server() as srv:
        cases = [
            ("length -1 NEW_BETS", bytes([OP_NEW_BETS]) + enc_int(-1),
             r"frame length -1 is negative"),
            ("length -1 ECHO", bytes([OP_ECHO]) + enc_int(-1), r"frame length -1 is negative"),
            ("length INT32_MIN", bytes([OP_ECHO]) + enc_int(-2**31),
             r"frame length -2147483648 is negative"),
            ("length 2147483647", bytes([OP_NEW_BETS]) + enc_int(2**31 - 1),
             r"frame length 2147483647 exceeds the cap of 1048576"),
            ("length cap+1", bytes([OP_ECHO]) + enc_int(CAP + 1),
             r"frame length 1048577 exceeds the cap of 1048576"),
            ("unknown opcode 6", bytes([6]) + enc_int(0), r"unknown opcode 6"),
            ("unknown opcode 255", bytes([255]) + enc_int(4) + b"abcd", r"unknown opcode 255"),
            ("FINISHED empty body", frame(OP_FINISHED, b""),
             r"FINISHED: int needs 4 bytes, 0 left"),
            ("FINISHED 8-byte body", frame(OP_FINISHED, enc_int(1) + enc_int(2)),
             r"FINISHED: 4 trailing bytes.*"),
        ]
        for name, data, reason in cases:
            start = len(srv.lines)
            c = connect(srv.port)
            # A valid frame bundled after the bad header must never be answered.
            c.send_raw(data + frame(OP_ECHO, b"after"))
            try:
                expect_close_with(srv, c, reason, start)
            except Exception as exc:
                raise type(exc)("%s: %s" % (name, exc))
            finally:
                c.close()
            echo_ok(srv.port)
        rows = shutdown_rows(srv)
        check(rows == [], "storage holds %r" % rows)


def test_server_only_opcodes_from_client():
    """Opcodes the server sends (SUCCESS, FAIL, WINNERS) are not requests: close."""
    with server() as srv:
        for op, name in ((OP_BETS_RECV_SUCCESS, "BETS_RECV_SUCCESS"),
                         (OP_BETS_RECV_FAIL, "BETS_RECV_FAIL"), (OP_WINNERS, "WINNERS")):
            start = len(srv.lines)
            c = connect(srv.port)
            c.send_frame(op, b"")
            expect_close_with(srv, c, r"opcode %d \(%s\) is not sent by clients"
                              % (op, name), start)
            c.close()
            echo_ok(srv.port)
        check(shutdown_rows(srv) == [], "storage not empty")


def test_frame_before_error_is_answered():
    """A valid ECHO bundled before a bad header is answered, then the close."""
    with server() as srv:
        start = len(srv.lines)
        c = connect(srv.port)
        c.send_raw(frame(OP_ECHO, b"first") + bytes([OP_ECHO]) + enc_int(-7))
        expect_close_with(srv, c, r"frame length -7 is negative", start,
                          after=frame(OP_ECHO, b"first"))
        c.close()
        echo_ok(srv.port)
        check(shutdown_rows(srv) == [], "storage not empty")


def test_echo_edge_bodies():
    with server() as srv:
        c = connect(srv.port)
        for body in (b"", b"\x00", b"a|b\r\nc\x00\xff", bytes(range(256)) * 4, b"x" * CAP):
            c.send_frame(OP_ECHO, body)
            op, got = c.recv_frame(timeout=10)
            check(op == OP_ECHO and got == body, "ECHO of %d bytes came back wrong" % len(body))
        c.close()
        # Every receive_message line must still split cleanly on '|', one line each.
        check(srv.count(r"action: receive_message") == 5, "receive_message lines: %r"
              % [x[:120] for x in srv.matching(r"receive_message")])
        for line in srv.matching(r"action: receive_message"):
            check(line.count("|") == 3, "stray '|' in %r" % line[:200])
        check(shutdown_rows(srv) == [], "storage not empty")


# ---- bad NEW_BETS bodies: BETS_RECV_FAIL, the connection goes on ----------

def _bad_body_cases():
    valid_one = new_bets_body(good_bets(1, 1, start=900))
    valid_two = new_bets_body(good_bets(1, 2, start=910))
    m = bad_map()
    six = enc_map(m)
    return [
        # (name, body, cantidad regex or None, reason regex)
        ("length 0", b"", None, r".*4 bytes.*"),
        ("count -1", enc_int(-1), None, r".*negative.*"),
        ("count 1, no map", enc_int(1), None, r".*"),
        ("count 2^31-1", enc_int(2**31 - 1), None, r".*"),
        ("body shorter than its strings", valid_two[:-2], None,
         r"bet 2: string length \d+ exceeds the \d+ bytes left"),
        ("string length past end", enc_int(1) + enc_int(6) + enc_str("AGENCIA")
         + enc_int(1000) + b"1" * 100, None,
         r"bet 1: string length 1000 exceeds the 100 bytes left"),
        ("string length negative", enc_int(1) + enc_int(6) + enc_str("AGENCIA")
         + enc_int(-5) + b"1" * 200, None, r"bet 1: string length -5 is negative"),
        ("map count 7 with 6 pairs", enc_int(1) + enc_int(7) + six[4:], None, r"bet 1: .*"),
        ("map count -1", enc_int(1) + enc_int(-1) + six[4:], None, r"bet 1: .*"),
        ("missing key", body_of_maps([m[:5]]), None, r"bet 1: missing key NUMERO"),
        ("duplicated key", body_of_maps([m[:2] + [("NOMBRE", "Otro")] + m[3:]]), None,
         r"bet 1: duplicate key NOMBRE"),
        ("duplicated key, 7 pairs", body_of_maps([m + [("NOMBRE", "Otro")]]), None,
         r"bet 1: duplicate key NOMBRE"),
        ("extra key", body_of_maps([m + [("EXTRA", "1")]]), None, r"bet 1: unknown key EXTRA"),
        ("lowercase key", body_of_maps([[("agencia", "1")] + m[1:]]), None,
         r"bet 1: unknown key agencia"),
        ("trailing bytes", valid_one + b"\x00\x00", None, r"2 trailing bytes after the last bet"),
        ("second bet bad", body_of_maps([m, bad_map(NACIMIENTO="2023-02-30")]), "2",
         r".*birthdate 2023-02-30 is not a calendar date"),
        ("name not UTF-8", body_of_maps([bad_map(NOMBRE=b"Jos\xe9")]), "1",
         r".*not valid UTF-8"),
        ("name overlong UTF-8", body_of_maps([bad_map(APELLIDO=b"\xc0\xaf")]), "1",
         r".*not valid UTF-8"),
        ("name UTF-16 surrogate", body_of_maps([bad_map(APELLIDO=b"\xed\xa0\x80")]), "1",
         r".*not valid UTF-8"),
        ("name with NUL", body_of_maps([bad_map(NOMBRE=b"An\x00a")]), "1",
         r".*control character 0x00.*"),
        ("name with CR LF", body_of_maps([bad_map(APELLIDO="G\r\nz")]), "1",
         r".*control character 0x0d.*"),
        ("empty name", body_of_maps([bad_map(NOMBRE="")]), "1", r".*is empty"),
        ("birthdate 2023-02-30", body_of_maps([bad_map(NACIMIENTO="2023-02-30")]), "1",
         r".*birthdate 2023-02-30 is not a calendar date"),
        ("birthdate 2023-2-3", body_of_maps([bad_map(NACIMIENTO="2023-2-3")]), "1",
         r".*birthdate 2023-2-3 is not a calendar date"),
        ("birthdate 1900-02-29", body_of_maps([bad_map(NACIMIENTO="1900-02-29")]), "1",
         r".*birthdate 1900-02-29 is not a calendar date"),
        ("document not numeric", body_of_maps([bad_map(DOCUMENTO="12a45")]), "1",
         r".*document '12a45' is not 1 to 10 decimal digits"),
        ("document negative", body_of_maps([bad_map(DOCUMENTO="-5")]), "1",
         r".*document '-5' is not 1 to 10 decimal digits"),
        ("document empty", body_of_maps([bad_map(DOCUMENTO="")]), "1", r".*document.*"),
        ("document beyond int32", body_of_maps([bad_map(DOCUMENTO="2147483648")]), "1",
         r".*document 2147483648 exceeds 2147483647"),
        ("document 11 digits", body_of_maps([bad_map(DOCUMENTO="99999999999")]), "1",
         r".*document.*"),
        ("number not numeric", body_of_maps([bad_map(NUMERO="12x")]), "1",
         r".*NUMERO '12x' is not an integer"),
        ("number with space", body_of_maps([bad_map(NUMERO=" 12")]), "1",
         r".*NUMERO ' 12' is not an integer"),
        ("number negative", body_of_maps([bad_map(NUMERO="-1")]), "1", r".*number -1 is negative"),
        ("number beyond int32", body_of_maps([bad_map(NUMERO="2147483648")]), "1",
         r".*NUMERO 2147483648 is out of the int32 range"),
        ("number beyond int64", body_of_maps([bad_map(NUMERO="99999999999999999999")]), "1",
         r".*NUMERO .* is not an integer"),
        ("agency not numeric", body_of_maps([bad_map(AGENCIA="uno")]), "1",
         r".*AGENCIA 'uno' is not an integer"),
        ("agency 0", body_of_maps([bad_map(AGENCIA="0")]), "1", r".*agency 0 is .*"),
        ("agency -1", body_of_maps([bad_map(AGENCIA="-1")]), "1", r".*agency -1 is .*"),
        ("agency AGENCIES+1", body_of_maps([bad_map(AGENCIA="6")]), "1",
         r".*agency 6 is out of range 1\.\.5"),
    ]


def test_bad_bodies_answer_fail_and_continue():
    with server() as srv:
        c = connect(srv.port)
        expected = []
        for i, (name, body, cantidad, reason) in enumerate(_bad_body_cases()):
            start = len(srv.lines)
            c.send_frame(OP_NEW_BETS, body)
            op, ack = c.recv_frame()
            check(op == OP_BETS_RECV_FAIL and ack == b"",
                  "%s: answered opcode %d body %r" % (name, op, ack[:32]))
            try:
                srv.wait_line(FAIL_BATCH % (cantidad or r"-?\d+", reason), start=start)
            except Exception as exc:
                raise type(exc)("%s: %s" % (name, exc))
            if expected:
                srv.wait_count(r"apuesta_almacenada", len(expected))
            check(srv.count(r"apuesta_almacenada") == len(expected),
                  "%s: a bet of a failed batch was logged as stored" % name)
            # The same connection goes on: its next batch is stored.
            good = good_bets(2, 2, start=100 + 2 * i)
            check(send_batch(c, good) == OP_BETS_RECV_SUCCESS, "%s: next batch failed" % name)
            expected += [row_of(b) for b in good]
        c.close()
        echo_ok(srv.port)
        rows = shutdown_rows(srv)
        check(rows == expected, "storage holds %d rows, expected %d: %r"
              % (len(rows), len(expected), rows[:4]))


def test_empty_batch():
    """A NEW_BETS with zero bets stores nothing and never breaks the stream."""
    with server() as srv:
        c = connect(srv.port)
        c.send_frame(OP_NEW_BETS, enc_int(0))
        op, _ = c.recv_frame()
        check(op in (OP_BETS_RECV_SUCCESS, OP_BETS_RECV_FAIL), "answered %d" % op)
        good = good_bets(1, 3)
        check(send_batch(c, good) == OP_BETS_RECV_SUCCESS, "next batch failed")
        c.close()
        check(shutdown_rows(srv) == [row_of(b) for b in good], "storage mismatch")


def test_accepted_values_roundtrip():
    """Awkward but valid values are stored exactly (CSV quoting)."""
    with server() as srv:
        bets = [
            bet(1, 'O"Brien, Jr', "d'Artagnan", 1, "2000-02-29", 0),
            bet(1, "Ñandú", "Zoë \"Z\"", 2147483647, "1900-01-01", 2147483647),
            bet(1, "a" * 256, "日本語", 10, "2100-12-31", 7574),
            bet(1, "Ana | Pipe", ";,", 11, "1999-12-31", 5),
        ]
        c = connect(srv.port)
        check(send_batch(c, bets) == OP_BETS_RECV_SUCCESS, "valid awkward batch failed")
        c.close()
        srv.wait_line(r"action: apuesta_recibida \| result: success \| cantidad: 4")
        pipe = srv.matching(r"apuesta_almacenada .*dni: 11 ")
        check(srv.count(r"apuesta_almacenada \| result: success \| dni: 1 \| numero: 0$") == 1,
              "no stored line for dni 1")
        del pipe
        check(shutdown_rows(srv) == [row_of(b) for b in bets], "storage mismatch")


def test_pipelined_answers_keep_order():
    """Frames sent back to back in one write are answered in order, though
    ACKs wait for the storage commit and FAILs and ECHOs do not."""
    with server() as srv:
        good1, good2 = good_bets(1, 5), good_bets(2, 5, start=5)
        bad = body_of_maps([bad_map(NACIMIENTO="2023-02-30")])
        c = connect(srv.port)
        c.send_raw(frame(OP_NEW_BETS, new_bets_body(good1)) + frame(OP_NEW_BETS, bad)
                   + frame(OP_ECHO, b"one") + frame(OP_NEW_BETS, new_bets_body(good2))
                   + frame(OP_NEW_BETS, bad) + frame(OP_ECHO, b"two"))
        got = [c.recv_frame() for _ in range(6)]
        want = [(OP_BETS_RECV_SUCCESS, b""), (OP_BETS_RECV_FAIL, b""), (OP_ECHO, b"one"),
                (OP_BETS_RECV_SUCCESS, b""), (OP_BETS_RECV_FAIL, b""), (OP_ECHO, b"two")]
        check(got == want, "answers out of order: %r" % got)
        c.close()
        check(shutdown_rows(srv) == [row_of(b) for b in good1 + good2], "storage mismatch")


def test_last_batch_and_finished_pipelined():
    """The last agency sends its last batch and FINISHED in one write: the ACK
    comes first, and the raffle already counts that batch's winners."""
    with server({"AGENCIES": 2}) as srv:
        bets1 = good_bets(1, 300)
        bets2 = good_bets(2, 300, start=300)
        a = connect(srv.port)
        a.send_raw(frame(OP_NEW_BETS, new_bets_body(bets1)) + frame(OP_FINISHED, finished_body(1)))
        check(a.recv_frame() == (OP_BETS_RECV_SUCCESS, b""), "agency 1's ACK")
        b = connect(srv.port)
        b.send_raw(frame(OP_NEW_BETS, new_bets_body(bets2)) + frame(OP_FINISHED, finished_body(2)))
        check(b.recv_frame() == (OP_BETS_RECV_SUCCESS, b""), "agency 2's ACK before WINNERS")
        for conn, agency, bets in ((a, 1, bets1), (b, 2, bets2)):
            op, body = conn.recv_frame(timeout=10)
            check(op == OP_WINNERS, "agency %d got %d" % (agency, op))
            check(sorted(decode_winners(body)) == _winners_of(bets, agency),
                  "agency %d winners miss its last batch" % agency)
            check(_winners_of(bets, agency), "test data has no winners")
            conn.expect_closed()
            conn.close()
        check(shutdown_rows(srv) == [row_of(x) for x in bets1 + bets2], "storage mismatch")
        # The log keeps the order of the requests: each agency's batch lines
        # come before its FINISHED line, though they wait for the commit.
        order = [(a, r) for a, r, _ in srv.actions()
                 if a in ("apuesta_recibida", "finished", "sorteo")]
        check(order == [("apuesta_recibida", "success"), ("finished", "in_progress"),
                        ("apuesta_recibida", "success"), ("finished", "success"),
                        ("sorteo", "success")], "log order %r" % order)


def test_biggest_batches():
    """A NEW_BETS just under the 1 MiB cap is stored whole; one of the same size
    whose very last bet is bad stores nothing."""
    with server() as srv:
        bets = good_bets(1, 9000)
        body = new_bets_body(bets)
        while len(body) > CAP:
            bets = bets[:-50]
            body = new_bets_body(bets)
        c = connect(srv.port)
        t0 = time.monotonic()
        check(send_batch(c, bets) == OP_BETS_RECV_SUCCESS, "big batch failed")
        took = time.monotonic() - t0
        print("  %d bets in %d bytes stored in %.2fs" % (len(bets), len(body), took), flush=True)
        spoiled = good_bets(2, len(bets) - 1) + [bet(2, "X", "Y", 1, "2023-02-30", 1)]
        while len(new_bets_body(spoiled)) > CAP:
            spoiled = spoiled[50:]
        start = len(srv.lines)
        check(send_batch(c, spoiled) == OP_BETS_RECV_FAIL, "spoiled big batch stored")
        srv.wait_line(FAIL_BATCH % (len(spoiled), r"bet %d: birthdate 2023-02-30 is not a "
                                    r"calendar date" % len(spoiled)), start=start)
        c.close()
        rows = shutdown_rows(srv)
        check(rows == [row_of(b) for b in bets], "storage holds %d rows, expected %d"
              % (len(rows), len(bets)))


def test_log_injection():
    """Values that carry '|', CR or LF in a rejected bet or an ECHO can neither
    split a log line nor forge one."""
    with server() as srv:
        evil = "x\naction: forged | result: success\r\n"
        c = connect(srv.port)
        for body in (body_of_maps([bad_map(NOMBRE=evil)]),
                     body_of_maps([bad_map()[:5] + [("NUMERO|" + evil, "1")]]),
                     body_of_maps([bad_map(DOCUMENTO=evil)]),
                     body_of_maps([bad_map(NUMERO=evil)])):
            c.send_frame(OP_NEW_BETS, body)
            check(c.recv_frame()[0] == OP_BETS_RECV_FAIL, "evil batch not refused")
        c.send_frame(OP_ECHO, evil.encode())
        check(c.recv_frame() == (OP_ECHO, evil.encode()), "evil echo")
        c.close()
        srv.wait_count(r"action: (apuesta_recibida|receive_message)", 5)
        check(srv.count(r"forged") == 5, "forged text should appear once per request, "
              "inside a value: %r" % srv.matching("forged"))
        check(srv.count(r"^action: forged|\| action: forged|result: success\r") == 0,
              "a log line was forged: %r" % srv.matching("forged"))
        check(shutdown_rows(srv) == [], "storage not empty")


# ---- slow and silent peers --------------------------------------------------

def _send_dataset(port, batches, window=8):
    s = PipelinedSender(port, batches, window=window).run()
    check(s.error is None, "sender failed: %r" % s.error)
    check(all(s.status.get(i) == "ok" for i in range(len(batches))), "a batch was not confirmed")
    return s.elapsed


def test_dribbled_frame_does_not_stall_others():
    """One byte every 100 ms of a NEW_BETS while agency 3 sends its dataset."""
    rows3 = dataset_rows(3)
    batches = chunks(rows3, 60)
    with server({"IDLE_TIMEOUT": 120}) as srv:
        # Twice, keeping the faster: the first run also warms the server up.
        solo = min(_send_dataset(srv.port, batches), _send_dataset(srv.port, batches))
        rows_after_solo = [row_of(b) for b in rows3] * 2
        slow_bet = good_bets(1, 1, start=4242)
        data = frame(OP_NEW_BETS, new_bets_body(slow_bet))
        c = connect(srv.port)
        done = threading.Event()
        hurry = threading.Event()  # the measurement is over: send the rest
        in_body = threading.Event()  # the header and part of the body are out
        err = []

        def dribble():
            try:
                for i in range(len(data)):
                    c.send_raw(data[i:i + 1])
                    if i == 12:
                        in_body.set()
                    if i + 1 < len(data) and not hurry.is_set():
                        time.sleep(0.1)  # the pacing is the scenario
            except OSError as exc:
                err.append(exc)
            done.set()

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        # The server has the header and waits for the rest of the body.
        check(in_body.wait(10 * SLOW), "dribble did not get going")
        busy = _send_dataset(srv.port, batches)
        still_dribbling = not done.is_set()
        bound = max(3 * solo, solo + 2.0) * SLOW
        print("  solo %.2fs, next to the dribbler %.2fs (bound %.2fs), frame %d bytes"
              % (solo, busy, bound, len(data)), flush=True)
        check(still_dribbling, "the dataset took longer than the whole dribble")
        check(busy <= bound, "dataset took %.2fs next to the dribbler, %.2fs alone" % (busy, solo))
        echo_ok(srv.port)
        hurry.set()
        t.join(30)
        check(not err, "dribble failed: %r" % err)
        op, _ = c.recv_frame(timeout=10)
        check(op == OP_BETS_RECV_SUCCESS, "dribbled batch answered %d" % op)
        c.close()
        rows = shutdown_rows(srv)
        expected = rows_after_solo + [row_of(b) for b in rows3]
        check(sorted(rows) == sorted(expected + [row_of(slow_bet[0])]),
              "storage holds %d rows, expected %d" % (len(rows), len(expected) + 1))


def _client_run(srv, workdir, dribble=None):
    """Runs the real client as agency 3 over datasets/agency-3.csv. Returns the
    seconds from its start until it logs that every batch was confirmed; then
    agencies 1 and 2 finish (agency 1 after the dribble, if any) so the client
    gets its winners and exits 0."""
    dataset = os.path.join(SOURCE_DIR, "datasets", "agency-3.csv")
    t0 = time.monotonic()
    cli = start_client(workdir, env={"CLI_ID": 3, "CLI_DATASET": dataset,
                                     "CLI_SERVER_ADDRESS": "127.0.0.1:%d" % srv.port})
    try:
        cli.wait_line(r"action: apuestas_enviadas \| result: success", timeout=60)
        took = time.monotonic() - t0
        if dribble is not None:
            dribble()
        finishers = [_finish(srv.port, agency) for agency in (1, 2)]
        for f in finishers:
            check(f.recv_frame(timeout=10)[0] == OP_WINNERS, "no WINNERS")
            f.close()
        rc = cli.wait_exit(20)
        check(rc == 0, "client exited %r:\n%s" % (rc, cli.tail()))
        cli.wait_line(r"action: consulta_ganadores \| result: success \| cant_ganadores: %d$"
                      % len(_winners_of(dataset_rows(3), 3)))
        return took
    finally:
        if cli.alive():
            cli.kill()


def test_dribble_with_real_client():
    """The same race, with build/bin/client sending agency 3's dataset."""
    rows3 = dataset_rows(3)
    with tmpdir() as d:
        with server({"AGENCIES": 3}) as srv:
            solo = _client_run(srv, d)
            check(len(shutdown_rows(srv)) == len(rows3), "solo run stored the wrong count")
        with server({"AGENCIES": 3, "IDLE_TIMEOUT": 120}) as srv:
            slow_bet = good_bets(1, 1, start=4242)
            data = frame(OP_NEW_BETS, new_bets_body(slow_bet))
            c = connect(srv.port)
            stop_dribble = threading.Event()

            in_body = threading.Event()

            def pace():
                for i in range(len(data)):
                    c.send_raw(data[i:i + 1])
                    if i == 12:
                        in_body.set()
                    if i + 1 < len(data) and not stop_dribble.is_set():
                        time.sleep(0.1)  # the pacing is the scenario

            t = threading.Thread(target=pace, daemon=True)
            t.start()
            check(in_body.wait(10 * SLOW), "dribble did not get going")
            t_start = time.monotonic()
            state = {}

            def after_client():
                state["dribbling"] = t.is_alive()
                state["elapsed"] = time.monotonic() - t_start
                stop_dribble.set()
                t.join(30)
                check(c.recv_frame(timeout=10)[0] == OP_BETS_RECV_SUCCESS, "dribbled batch")
                c.close()

            busy = _client_run(srv, d, dribble=after_client)
            bound = max(3 * solo, solo + 2.0) * SLOW
            print("  real client: solo %.2fs, next to the dribbler %.2fs (bound %.2fs)"
                  % (solo, busy, bound), flush=True)
            check(state["dribbling"], "the client took longer than the dribble (%.1fs)"
                  % state["elapsed"])
            check(busy <= bound, "client took %.2fs next to the dribbler, %.2fs alone"
                  % (busy, solo))
            rows = shutdown_rows(srv)
            check(sorted(rows) == sorted([row_of(b) for b in rows3] + [row_of(slow_bet[0])]),
                  "storage holds %d rows" % len(rows))


def test_thousand_silent_connections():
    check(raise_nofile(4096) >= 1100, "the fd limit is below 1,100: cannot open 1,000 peers")
    # A backlog of 128 keeps the connect loop from waiting on SYN retries; the
    # point here is what the server does with 1,000 silent peers.
    with server({"SERVER_LISTEN_BACKLOG": 128}) as srv:
        silent = []
        try:
            t0 = time.monotonic()
            for _ in range(1000):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
                silent.append(s)
            print("  1000 connections made in %.2fs" % (time.monotonic() - t0), flush=True)
            t0 = time.monotonic()
            echo_ok(srv.port)
            c = connect(srv.port)
            good = good_bets(1, 5)
            check(send_batch(c, good) == OP_BETS_RECV_SUCCESS, "batch failed")
            c.close()
            took = time.monotonic() - t0
            check(took < 2.0 * SLOW, "server took %.2fs to answer with 1000 idle peers" % took)
            # None of the silent connections got anything or was closed.
            for s in silent[:50]:
                s.setblocking(False)
                try:
                    got = s.recv(1)
                except BlockingIOError:
                    got = None
                check(got is None, "a silent connection got %r" % got)
        finally:
            for s in silent:
                s.close()
        echo_ok(srv.port)
        check(srv.alive(), "server died")
        check(shutdown_rows(srv) == [row_of(b) for b in good], "storage mismatch")


def test_disconnect_mid_batch():
    """A peer that sends part of a batch and goes away stores nothing of it."""
    with server() as srv:
        partial = frame(OP_NEW_BETS, new_bets_body(good_bets(1, 50)))
        for cut in (1, 5, len(partial) // 2, len(partial) - 1):
            c = connect(srv.port)
            c.send_raw(partial[:cut])
            c.close()
        # And once with a reset instead of a FIN.
        c = connect(srv.port)
        c.send_raw(partial[:-1])
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        echo_ok(srv.port)
        good = good_bets(2, 3)
        c = connect(srv.port)
        check(send_batch(c, good) == OP_BETS_RECV_SUCCESS, "batch failed")
        c.close()
        check(shutdown_rows(srv) == [row_of(b) for b in good], "storage mismatch")
        # After the shutdown every line is out: only the good batch's bets.
        check(srv.count(r"apuesta_almacenada") == 3, "bets of a cut batch logged as stored")


def test_half_close_gets_answers():
    """A peer that sends its request and then shuts down its sending side (as
    nc -N does in validar-echo-server.sh) still gets its answer before the
    close: the ECHO, and the ACK that waits for the storage commit.
    (A parked FINISHED that half-closes is treated as gone: see
    test_parked_connection_goes_away.)"""
    with server({"SERVER_LISTEN_BACKLOG": 256}) as srv:
        bets = []
        for i in range(40):
            c = connect(srv.port)
            c.send_frame(OP_ECHO, b"half %d" % i)
            c.sock.shutdown(socket.SHUT_WR)
            check(c.expect_closed() == frame(OP_ECHO, b"half %d" % i), "ECHO then SHUT_WR")
            c.close()
            batch = good_bets(1 + i % 5, 3, start=3 * i)
            c = connect(srv.port)
            c.send_frame(OP_NEW_BETS, new_bets_body(batch))
            c.sock.shutdown(socket.SHUT_WR)
            got = c.expect_closed()
            c.close()
            check(got == frame(OP_BETS_RECV_SUCCESS, b""),
                  "NEW_BETS then SHUT_WR (try %d) got %r" % (i, got))
            bets += batch
        rows = shutdown_rows(srv)
        check(rows == [row_of(b) for b in bets], "storage mismatch")


def test_close_right_after_whole_batch():
    """Peers that send whole batches and vanish (FIN or RST) before the ACK:
    the server must not touch the gone connection when the commit completes;
    each batch is stored whole or not at all, and the server keeps serving."""
    with server({"SERVER_LISTEN_BACKLOG": 256}) as srv:
        sent = []
        for i in range(60):
            batch = good_bets(1 + i % 5, 10, start=1000 + 10 * i)
            c = connect(srv.port)
            c.send_frame(OP_NEW_BETS, new_bets_body(batch))
            if i % 2:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            sent.append(batch)
        echo_ok(srv.port)
        good = good_bets(2, 3)
        c = connect(srv.port)
        check(send_batch(c, good) == OP_BETS_RECV_SUCCESS, "batch failed")
        c.close()
        rows = shutdown_rows(srv)
        stored = {tuple(r) for r in rows}
        check(len(stored) == len(rows), "duplicate rows")
        for batch in sent:
            present = [tuple(row_of(b)) in stored for b in batch]
            check(all(present) or not any(present), "a batch was stored in part")
        check(all(tuple(row_of(b)) in stored for b in good), "confirmed batch missing")
        print("  %d of %d vanished peers' batches stored"
              % (sum(1 for bt in sent if tuple(row_of(bt[0])) in stored), len(sent)), flush=True)


# ---- FINISHED misuse ----------------------------------------------------------

def _finish(port, agency):
    c = connect(port)
    c.send_frame(OP_FINISHED, finished_body(agency))
    return c


def _winners_of(bets, agency):
    return sorted(b["DOCUMENTO"] for b in bets if b["NUMERO"] == "7574"
                  and b["AGENCIA"] == str(agency))


def test_finished_bad_agency():
    with server({"AGENCIES": 2}) as srv:
        for agency in (0, -1, 3, 2**31 - 1, -2**31):
            start = len(srv.lines)
            c = _finish(srv.port, agency)
            expect_close_with(srv, c, r".*agency %d is out of range 1\.\.2" % agency, start)
            c.close()
            echo_ok(srv.port)
        check(srv.count(r"action: sorteo") == 0, "raffle ran after bad FINISHEDs")
        bets = good_bets(1, 200) + good_bets(2, 200, start=200)
        c = connect(srv.port)
        check(send_batch(c, bets) == OP_BETS_RECV_SUCCESS, "batch failed")
        a1 = _finish(srv.port, 1)
        a1.expect_silence(0.3)
        a2 = c
        a2.send_frame(OP_FINISHED, finished_body(2))
        for conn, agency in ((a1, 1), (a2, 2)):
            op, body = conn.recv_frame(timeout=10)
            check(op == OP_WINNERS, "agency %d got opcode %d" % (agency, op))
            check(sorted(decode_winners(body)) == _winners_of(bets, agency),
                  "agency %d got wrong winners" % agency)
            conn.expect_closed()
            conn.close()
        srv.wait_line(r"action: sorteo \| result: success")
        check(srv.count(r"action: sorteo \| result: success") == 1, "raffle count")
        check(shutdown_rows(srv) == [row_of(b) for b in bets], "storage mismatch")


def test_finished_twice_same_connection():
    with server({"AGENCIES": 2}) as srv:
        c = _finish(srv.port, 1)
        c.expect_silence(0.2)
        start = len(srv.lines)
        c.send_frame(OP_FINISHED, finished_body(1))
        expect_close_with(srv, c, r"connection already sent FINISHED for agency 1", start)
        c.close()
        echo_ok(srv.port)
        check(srv.count(r"action: sorteo") == 0, "raffle ran early")
        # Agency 2 finishing still triggers the one raffle; agency 1 asks again.
        c2 = _finish(srv.port, 2)
        op, body = c2.recv_frame(timeout=10)
        check(op == OP_WINNERS and decode_winners(body) == [], "agency 2: %d %r" % (op, body))
        c2.close()
        srv.wait_line(r"action: sorteo \| result: success")
        late = _finish(srv.port, 1)
        op, body = late.recv_frame(timeout=10)
        check(op == OP_WINNERS and decode_winners(body) == [], "late agency 1: %d" % op)
        late.close()
        check(srv.count(r"action: sorteo \| result: success") == 1, "raffle count")
        check(shutdown_rows(srv) == [], "storage not empty")


def test_two_connections_same_agency():
    """Two connections send bets as agency 1: both stored. The second FINISHED
    for agency 1 is a duplicate (closed); the first stays parked and later gets
    the winners of every agency-1 bet, whichever connection sent it."""
    with server({"AGENCIES": 2}) as srv:
        a = connect(srv.port)
        b = connect(srv.port)
        bets_a = good_bets(1, 300)
        bets_b = good_bets(1, 300, start=300)
        check(send_batch(a, bets_a) == OP_BETS_RECV_SUCCESS, "a's batch failed")
        check(send_batch(b, bets_b) == OP_BETS_RECV_SUCCESS, "b's batch failed")
        a.send_frame(OP_FINISHED, finished_body(1))
        a.expect_silence(0.2)
        start = len(srv.lines)
        b.send_frame(OP_FINISHED, finished_body(1))
        expect_close_with(srv, b, r".*agency 1 already finished", start)
        b.close()
        # Bets of agency 1 after its FINISHED, on a third connection: refused.
        c = connect(srv.port)
        start = len(srv.lines)
        check(send_batch(c, good_bets(1, 2, start=900)) == OP_BETS_RECV_FAIL, "late bets stored")
        srv.wait_line(FAIL_BATCH % ("2", r".*agency 1 already finished"), start=start)
        # Agency 2 bets are still fine; then agency 2 finishes on c.
        bets2 = good_bets(2, 100)
        check(send_batch(c, bets2) == OP_BETS_RECV_SUCCESS, "agency 2 batch failed")
        c.send_frame(OP_FINISHED, finished_body(2))
        op, body = a.recv_frame(timeout=10)
        check(op == OP_WINNERS, "a got %d" % op)
        check(sorted(decode_winners(body)) == _winners_of(bets_a + bets_b, 1), "a's winners")
        op, body = c.recv_frame(timeout=10)
        check(op == OP_WINNERS and sorted(decode_winners(body)) == _winners_of(bets2, 2),
              "c's winners")
        a.close()
        c.close()
        rows = shutdown_rows(srv)
        check(rows == [row_of(x) for x in bets_a + bets_b + bets2], "storage mismatch")


def test_bets_after_finished_and_after_raffle():
    with server({"AGENCIES": 2}) as srv:
        a = connect(srv.port)
        bets1 = good_bets(1, 100)
        check(send_batch(a, bets1) == OP_BETS_RECV_SUCCESS, "batch failed")
        a.send_frame(OP_FINISHED, finished_body(1))
        # The parked connection itself sends more bets: refused, it stays parked.
        start = len(srv.lines)
        a.send_frame(OP_NEW_BETS, new_bets_body(good_bets(1, 1, start=500)))
        op, _ = a.recv_frame()
        check(op == OP_BETS_RECV_FAIL, "bets after FINISHED on the parked conn: %d" % op)
        srv.wait_line(FAIL_BATCH % ("1", r".*agency 1 already finished"), start=start)
        # A batch mixing agencies 1 and 2 is refused as a whole.
        c = connect(srv.port)
        mixed = good_bets(2, 1) + good_bets(1, 1, start=600)
        check(send_batch(c, mixed) == OP_BETS_RECV_FAIL, "mixed batch stored")
        bets2 = good_bets(2, 100)
        check(send_batch(c, bets2) == OP_BETS_RECV_SUCCESS, "agency 2 batch failed")
        c.send_frame(OP_FINISHED, finished_body(2))
        for conn, agency, bets in ((a, 1, bets1), (c, 2, bets2)):
            op, body = conn.recv_frame(timeout=10)
            check(op == OP_WINNERS and sorted(decode_winners(body)) == _winners_of(bets, agency),
                  "agency %d winners" % agency)
            conn.close()
        srv.wait_line(r"action: sorteo \| result: success")
        d = connect(srv.port)
        start = len(srv.lines)
        check(send_batch(d, good_bets(2, 1, start=700)) == OP_BETS_RECV_FAIL,
              "bets after the raffle stored")
        srv.wait_line(FAIL_BATCH % ("1", r".*raffle already done"), start=start)
        echo_ok(srv.port)
        # A FINISHED after the raffle is answered at once, with its winners.
        d.send_frame(OP_FINISHED, finished_body(1))
        op, body = d.recv_frame()
        check(op == OP_WINNERS and sorted(decode_winners(body)) == _winners_of(bets1, 1),
              "late FINISHED")
        d.close()
        check(srv.count(r"action: sorteo \| result: success") == 1, "raffle count")
        check(shutdown_rows(srv) == [row_of(b) for b in bets1 + bets2], "storage mismatch")


def test_parked_connection_goes_away():
    """A parked agency that disconnects still counts as finished; the raffle
    runs when the others finish and nobody else is affected."""
    with server({"AGENCIES": 2}) as srv:
        bets = good_bets(1, 200)
        a = connect(srv.port)
        check(send_batch(a, bets) == OP_BETS_RECV_SUCCESS, "batch failed")
        a.send_frame(OP_FINISHED, finished_body(1))
        a.expect_silence(0.2)
        a.close()
        echo_ok(srv.port)
        b = _finish(srv.port, 2)
        op, body = b.recv_frame(timeout=10)
        check(op == OP_WINNERS and decode_winners(body) == [], "agency 2 winners")
        b.close()
        late = _finish(srv.port, 1)
        op, body = late.recv_frame(timeout=10)
        check(op == OP_WINNERS and sorted(decode_winners(body)) == _winners_of(bets, 1),
              "agency 1 winners after reconnecting")
        late.close()
        check(shutdown_rows(srv) == [row_of(b) for b in bets], "storage mismatch")


def test_sigterm_in_the_middle_of_everything():
    """SIGTERM while five agencies stream batches, one agency is parked, a peer
    is paused by the watermark, one holds half a frame and 200 say nothing:
    exit code 0, every confirmed batch stored whole, no torn row (and, under
    ASan or valgrind, no leak)."""
    raise_nofile(4096)
    with server({"AGENCIES": 6, "SERVER_LISTEN_BACKLOG": 256,
                 "OUTPUT_HIGH_WATERMARK": 65536}) as srv:
        parked = _finish(srv.port, 6)
        silent = [connect(srv.port) for _ in range(200)]
        half = connect(srv.port)
        half.send_raw(frame(OP_NEW_BETS, new_bets_body(good_bets(1, 10, start=99000)))[:50])
        flood = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flood.connect(("127.0.0.1", srv.port))
        flood.setblocking(False)
        pumped = 0
        echo_frame = frame(OP_ECHO, b"F" * 16384)
        while pumped < (2 << 20):
            try:
                pumped += flood.send(echo_frame)
            except BlockingIOError:
                break
        plans = {a: chunks(good_bets(a, 3000, start=10000), 30) for a in range(1, 6)}
        senders = [PipelinedSender(srv.port, plans[a], window=4, name="agency-%d" % a).start()
                   for a in plans]
        wait_until(lambda: all(x.confirmed_count() >= 10 for x in senders), 30,
                   "every sender to get 10 ACKs")
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(20)
        check(rc == 0, "exit code %r after SIGTERM; output:\n%s" % (rc, srv.tail()))
        check(srv.count(r"action: shutdown \| result: success") == 1, "no shutdown line")
        for x in senders:
            x.join(30)
        for c in silent + [half, parked]:
            c.close()
        flood.close()
        rows = read_bets_file(srv.storage_path)
        stored = {tuple(r) for r in rows}
        check(len(stored) == len(rows), "duplicate rows")
        confirmed = 0
        for x, a in zip(senders, plans):
            for i, batch in enumerate(plans[a]):
                present = [tuple(row_of(b)) in stored for b in batch]
                check(all(present) or not any(present), "batch %d of %d stored in part" % (i, a))
                if x.status.get(i) == "ok":
                    confirmed += 1
                    check(all(present), "confirmed batch %d of agency %d lost" % (i, a))
        print("  %d confirmed batches, %d rows stored at SIGTERM" % (confirmed, len(rows)),
              flush=True)
        check(srv.count(r"action: sorteo") == 0, "raffle ran")


# ---- peers that do not read ------------------------------------------------------

def test_winners_never_read():
    """Agency 1 has ~60k winners (a WINNERS frame of ~700 KB) and a 4 KiB receive
    buffer it never reads. The raffle, agency 2's answer and others' service go
    on; the frame is intact when agency 1 finally reads it."""
    n_win = 60000
    bets1 = [bet(1, "N", "A", 10_000_000 + i, "1990-01-01", 7574) for i in range(n_win)]
    with server({"AGENCIES": 2}) as srv:
        sender = PipelinedSender(srv.port, chunks(bets1, 2000), window=4).run()
        check(sender.error is None and sender.confirmed == len(chunks(bets1, 2000)),
              "setup batches failed: %r" % sender.error)
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(10 * SLOW)
        slow.connect(("127.0.0.1", srv.port))
        slow.sendall(frame(OP_FINISHED, finished_body(1)))
        rss0 = srv.rss_kib()
        b = _finish(srv.port, 2)
        op, body = b.recv_frame(timeout=20)
        check(op == OP_WINNERS and decode_winners(body) == [], "agency 2 winners")
        b.close()
        srv.wait_line(r"action: sorteo \| result: success", timeout=20)
        echo_ok(srv.port)
        c = connect(srv.port)
        check(send_batch(c, good_bets(2, 1)) == OP_BETS_RECV_FAIL, "bet after raffle stored")
        c.close()
        rss1 = srv.rss_kib()
        print("  RSS before raffle %d KiB, after %d KiB" % (rss0, rss1), flush=True)
        check(rss1 - rss0 < 64 * 1024, "RSS grew by %d KiB" % (rss1 - rss0))
        # Now read it all: the frame is whole and correct, then the close.
        got = b""
        slow.settimeout(20 * SLOW)
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        slow.close()
        check(got[0] == OP_WINNERS, "slow peer got opcode %d" % got[0])
        (length,) = struct.unpack_from("<i", got, 1)
        check(len(got) == 5 + length, "slow peer got %d bytes of a %d-byte frame"
              % (len(got), 5 + length))
        check(sorted(decode_winners(got[5:])) == sorted(str(10_000_000 + i)
                                                        for i in range(n_win)),
              "slow peer's winners wrong")
        rows = shutdown_rows(srv)
        check(len(rows) == n_win, "storage holds %d rows" % len(rows))


def test_echo_flood_never_read():
    """A peer pumps ECHO frames and never reads the answers. The server must stop
    reading from it once its output passes OUTPUT_HIGH_WATERMARK: its memory stays
    bounded and it keeps serving others."""
    with server() as srv:
        rss0 = srv.rss_kib()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.setblocking(False)
        payload = frame(OP_ECHO, b"E" * 65536)
        total_limit = 512 << 20
        sent = 0
        pending = b""
        last_progress = time.monotonic()
        peak = rss0
        # Write until the server stops taking bytes for 1 s (it stopped reading),
        # or until 512 MiB went through (it never did: fail below).
        while sent < total_limit:
            if not pending:
                pending = payload
            try:
                n = s.send(pending)
            except BlockingIOError:
                n = 0
            if n:
                sent += n
                pending = pending[n:]
                last_progress = time.monotonic()
            else:
                if time.monotonic() - last_progress > 1.0 * SLOW:
                    break
                select.select([], [s], [], 0.05)
            if sent % (8 << 20) < 65536:
                peak = max(peak, srv.rss_kib())
        peak = max(peak, srv.rss_kib())
        print("  flood: server took %.1f MiB before pausing; RSS %d -> peak %d KiB"
              % (sent / 1048576.0, rss0, peak), flush=True)
        check(sent < 128 << 20, "server kept reading: %d MiB taken" % (sent >> 20))
        check(peak - rss0 < 48 * 1024, "server RSS grew by %d KiB" % (peak - rss0))
        echo_ok(srv.port)
        c = connect(srv.port)
        good = good_bets(1, 3)
        check(send_batch(c, good) == OP_BETS_RECV_SUCCESS, "batch failed")
        c.close()
        s.close()
        echo_ok(srv.port)
        check(shutdown_rows(srv) == [row_of(b) for b in good], "storage mismatch")


if __name__ == "__main__":
    run_tests([
        test_framing_errors_close,
        test_server_only_opcodes_from_client,
        test_frame_before_error_is_answered,
        test_echo_edge_bodies,
        test_bad_bodies_answer_fail_and_continue,
        test_empty_batch,
        test_accepted_values_roundtrip,
        test_disconnect_mid_batch,
        test_pipelined_answers_keep_order,
        test_last_batch_and_finished_pipelined,
        test_biggest_batches,
        test_log_injection,
        test_half_close_gets_answers,
        test_close_right_after_whole_batch,
        test_finished_bad_agency,
        test_finished_twice_same_connection,
        test_two_connections_same_agency,
        test_bets_after_finished_and_after_raffle,
        test_parked_connection_goes_away,
        test_thousand_silent_connections,
        test_dribbled_frame_does_not_stall_others,
        test_dribble_with_real_client,
        test_sigterm_in_the_middle_of_everything,
        test_winners_never_read,
        test_echo_flood_never_read,
    ])
