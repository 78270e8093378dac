"""Durability against kill -9, and the start-up cut of a torn trailing row.

The guarantee under test: a batch the server confirmed (BETS_RECV_SUCCESS) is
in bets.csv exactly once, whenever the server is killed, and the file never
keeps a torn row. A batch that was sent but not confirmed when the server died
may be absent, whole, or (when the kill hit the middle of the write) a prefix
of its rows: the torn row is cut at the next start, the complete rows before it
stay. Senders never resend an unconfirmed batch, so every row must appear at
most once.

Set TP0_SEED to replay a run; the seed in use is printed.
"""

import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from adv_lib import (  # noqa: E402
    PipelinedSender,
    chunks,
    echo_ok,
    read_bets_file,
    row_of,
    send_batch,
    synthetic_bets,
    wait_until,
)
from harness import (  # noqa: E402
    OP_BETS_RECV_SUCCESS,
    OP_FINISHED,
    OP_WINNERS,
    bet,
    check,
    connect,
    decode_winners,
    finished_body,
    run_tests,
    start_server,
    stop,
    tmpdir,
)

AGENCIES = 5
OPEN_LINE = (r"action: storage_open \| result: success \| path: (?P<path>.*) \| "
             r"dropped_bytes: (?P<n>\d+)$")


def _start(workdir, storage):
    srv = start_server(workdir, env={"AGENCIES": AGENCIES, "STORAGE_PATH": storage})
    m = srv.wait_line(OPEN_LINE)
    check(m.group("path") == storage, "storage_open path %r" % m.group("path"))
    return srv, int(m.group("n"))


def _expected_cut(data):
    """What the server must drop from a file: everything after the last \\r\\n."""
    end = data.rfind(b"\r\n")
    return len(data) - (end + 2 if end >= 0 else 0)


def test_kill9_while_five_agencies_send():
    seed = int(os.environ.get("TP0_SEED", str(int(time.time() * 1000) % 1_000_000)))
    print("  seed %d (set TP0_SEED=%d to replay)" % (seed, seed), flush=True)
    rng = random.Random(seed)
    per_agency = 6000
    kill_rounds = 12
    # Small batches give many kill points; big ones (up to ~250 KB) give long
    # writes that a kill can tear.
    sizes = {a: rng.choice([10, 20, 50, 500, 2500]) for a in range(1, AGENCIES + 1)}
    print("  batch sizes by agency: %r" % sizes, flush=True)
    plans = {a: chunks(synthetic_bets(a, per_agency), sizes[a]) for a in range(1, AGENCIES + 1)}
    status = {a: {} for a in plans}  # agency -> batch index -> ok | fail | unknown
    next_index = {a: 0 for a in plans}
    total_batches = sum(len(b) for b in plans.values())
    drops = []

    with tmpdir() as d:
        storage = os.path.join(d, "bets.csv")
        for rnd in range(kill_rounds + 1):
            before = open(storage, "rb").read() if os.path.exists(storage) else b""
            srv, dropped = _start(d, storage)
            try:
                after = open(storage, "rb").read() if os.path.exists(storage) else b""
                check(dropped == _expected_cut(before),
                      "round %d: dropped_bytes %d, expected %d (tail %r)"
                      % (rnd, dropped, _expected_cut(before), before[-60:]))
                check(after == before[:len(before) - dropped],
                      "round %d: file after start is not the cut file" % rnd)
                drops.append(dropped)
                senders = []
                for a in plans:
                    if next_index[a] < len(plans[a]):
                        s = PipelinedSender(srv.port, plans[a], window=rng.randint(1, 8),
                                            first_index=next_index[a], name="agency-%d" % a)
                        senders.append((a, s.start()))
                last = rnd == kill_rounds
                if not last:
                    left = total_batches - sum(next_index.values())
                    # Kill after a random number of confirmations in this round;
                    # now and then right away, before or while senders connect.
                    share = max(1, left // (2 * (kill_rounds - rnd)))
                    target = 0 if rng.random() < 0.2 else rng.randint(1, share)

                    def progressed():
                        done = sum(s.confirmed_count() for _, s in senders)
                        finished = all(not s._thread.is_alive() for _, s in senders)
                        return done >= target or finished

                    wait_until(progressed, 60, "%d confirmations" % target, interval=0.001)
                    srv.kill()  # SIGKILL: no shutdown code runs
                    check(srv.count(r"action: shutdown") == 0, "server shut down cleanly?")
                for a, s in senders:
                    s.join(120)
                    if last:
                        check(s.error is None, "agency %d failed after the last restart: %r"
                              % (a, s.error))
                    status[a].update(s.status)
                    next_index[a] = s.next_index
                if last:
                    rc = stop(srv)
                    check(rc == 0, "exit code %r" % rc)
            finally:
                if srv.alive():
                    srv.kill()
            confirmed = sum(1 for a in status for v in status[a].values() if v == "ok")
            unknown = sum(1 for a in status for v in status[a].values() if v == "unknown")
            print("  round %d: dropped %d bytes at start; %d confirmed, %d unknown so far"
                  % (rnd, dropped, confirmed, unknown), flush=True)

        rows = read_bets_file(storage)

    # Index every bet the senders could have stored.
    where = {}
    for a, batches in plans.items():
        for bi, batch in enumerate(batches):
            for pos, b in enumerate(batch):
                where[b["DOCUMENTO"]] = (a, bi, pos, row_of(b))
    seen = {}
    runs = []  # (agency, batch) in file order, one entry per contiguous run
    for n, row in enumerate(rows):
        doc = row[3]
        check(doc in where, "row %d holds a bet nobody sent: %r" % (n, row))
        a, bi, pos, expect = where[doc]
        check(row == expect, "row %d is %r, sent as %r" % (n, row, expect))
        if doc in seen:
            raise AssertionError("document %s stored twice (rows %d and %d)" % (doc, seen[doc], n))
        seen[doc] = n
        if not runs or runs[-1][0] != (a, bi):
            runs.append([(a, bi), []])
        runs[-1][1].append(pos)
    by_batch = {}
    for key, positions in runs:
        check(key not in by_batch, "batch %r is split across the file" % (key,))
        by_batch[key] = positions
    whole = prefix = absent = 0
    for a, batches in plans.items():
        for bi, batch in enumerate(batches):
            st = status[a].get(bi)
            got = by_batch.get((a, bi), [])
            check(got == list(range(len(got))), "batch %r stored out of order: %r" % ((a, bi), got))
            if st == "ok":
                check(len(got) == len(batch), "confirmed batch %d of agency %d has %d of %d rows"
                      % (bi, a, len(got), len(batch)))
            elif st == "unknown":
                if len(got) == len(batch):
                    whole += 1
                elif got:
                    prefix += 1
                else:
                    absent += 1
            elif st == "fail":
                raise AssertionError("batch %d of agency %d was refused" % (bi, a))
            else:
                check(not got, "batch %d of agency %d was never sent but is stored" % (bi, a))
    confirmed = sum(1 for a in status for v in status[a].values() if v == "ok")
    print("  %d rows; %d confirmed batches all present once; unconfirmed: %d whole, %d prefix, "
          "%d absent; non-zero cuts at start: %d" % (len(rows), confirmed, whole, prefix, absent,
                                                    sum(1 for x in drops if x)), flush=True)
    check(confirmed > 0, "nothing was confirmed")
    check(all(status[a].get(bi) in ("ok", "unknown") for a in plans for bi in range(len(plans[a]))),
          "some batch was never sent")


# ---- torn trailing rows -------------------------------------------------------

VALID = (
    b"1,Ana,G\xc3\xb3mez,30111222,1990-05-17,7574\r\n"
    b'1,"O""Brien, Jr",Smith,30111223,1985-01-31,12\r\n'
    b"1,Luis,P\xc3\xa9rez,30111224,2000-02-29,7574\r\n"
)


def _torn_case(name, prefix, tail):
    """The file holds prefix + tail; the server must cut tail exactly, keep
    prefix byte for byte, then append after it and raffle from it."""
    with tmpdir() as d:
        storage = os.path.join(d, "bets.csv")
        with open(storage, "wb") as f:
            f.write(prefix + tail)
        srv = start_server(d, env={"AGENCIES": 1, "STORAGE_PATH": storage})
        try:
            m = srv.wait_line(OPEN_LINE)
            check(int(m.group("n")) == len(tail), "%s: dropped_bytes %s, expected %d"
                  % (name, m.group("n"), len(tail)))
            with open(storage, "rb") as f:
                check(f.read() == prefix, "%s: file after start is not the valid prefix" % name)
            echo_ok(srv.port)
            new = [bet(1, "Nuevo", "Apostador", 40000001, "1970-07-07", 7574)]
            c = connect(srv.port)
            check(send_batch(c, new) == OP_BETS_RECV_SUCCESS, "%s: batch failed" % name)
            c.send_frame(OP_FINISHED, finished_body(1))
            op, body = c.recv_frame(timeout=10)
            check(op == OP_WINNERS, "%s: got opcode %d" % (name, op))
            want = sorted(re.findall(rb"(\d+),\d{4}-\d\d-\d\d,7574\r\n", prefix))
            want = sorted([w.decode() for w in want] + ["40000001"])
            check(sorted(decode_winners(body)) == want, "%s: winners %r, expected %r"
                  % (name, decode_winners(body), want))
            c.close()
            check(stop(srv) == 0, "%s: exit code" % name)
            with open(storage, "rb") as f:
                check(f.read() == prefix + b"1,Nuevo,Apostador,40000001,1970-07-07,7574\r\n",
                      "%s: final file content" % name)
            read_bets_file(storage)
        finally:
            if srv.alive():
                srv.kill()


def test_torn_row_cut_at_start():
    _torn_case("partial row", VALID, b"1,Carla,D\xc3\xadaz,301")
    _torn_case("complete row without terminator", VALID, b"1,Carla,Diaz,30111225,1999-09-09,7574")
    _torn_case("row ending in a bare CR", VALID, b"1,Carla,Diaz,30111225,1999-09-09,7574\r")
    _torn_case("torn inside a quoted field", VALID, b'1,"O""Brien, J')
    _torn_case("torn inside a multibyte character", VALID, b"1,Carla,D\xc3")
    _torn_case("only a torn row", b"", b"1,Carla,Diaz,3011")
    _torn_case("clean file", VALID, b"")
    _torn_case("empty file", b"", b"")


def test_corrupt_row_fails_the_raffle_cleanly():
    """A complete but malformed row inside the file (not something the server
    writes) cannot be raffled: the raffle logs its failure, the waiting
    agencies are let go without winners, and the server keeps serving."""
    with tmpdir() as d:
        storage = os.path.join(d, "bets.csv")
        with open(storage, "wb") as f:
            f.write(VALID + b"1,only,four,fields\r\n" + VALID)
        srv = start_server(d, env={"AGENCIES": 1, "STORAGE_PATH": storage})
        try:
            m = srv.wait_line(OPEN_LINE)
            check(m.group("n") == "0", "a complete row was cut")
            c = connect(srv.port)
            c.send_frame(OP_FINISHED, finished_body(1))
            got = c.expect_closed(timeout=10)
            check(got == b"", "got %r instead of a close" % got[:40])
            c.close()
            srv.wait_line(r"action: sorteo \| result: fail \| "
                          r"error: .*/bets\.csv:4: expected 6 fields, got 4$")
            check(srv.count(r"action: sorteo \| result: success") == 0, "raffle succeeded")
            echo_ok(srv.port)
            check(stop(srv) == 0, "exit code")
        finally:
            if srv.alive():
                srv.kill()


def test_missing_file_created():
    with tmpdir() as d:
        storage = os.path.join(d, "bets.csv")
        srv = start_server(d, env={"STORAGE_PATH": storage})
        try:
            m = srv.wait_line(OPEN_LINE)
            check(m.group("n") == "0", "dropped_bytes %s for a new file" % m.group("n"))
            check(os.path.exists(storage), "storage file not created at start")
            check(stop(srv) == 0, "exit code")
        finally:
            if srv.alive():
                srv.kill()


if __name__ == "__main__":
    run_tests([
        test_torn_row_cut_at_start,
        test_missing_file_created,
        test_corrupt_row_fails_the_raffle_cleanly,
        test_kill9_while_five_agencies_send,
    ])
