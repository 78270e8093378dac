"""Helpers shared by the adversarial, limits and durability tests.

Everything here builds on harness.py: bet generators, a pipelined bet sender
that records which batches the server confirmed, a reader for the storage file
that refuses torn rows, and small probes (ECHO round trip, memory of the server
process). Nothing sleeps to synchronise.
"""

import csv
import io
import os
import resource
import socket
import struct
import threading
import time

from harness import (
    OP_BETS_RECV_FAIL,
    OP_BETS_RECV_SUCCESS,
    OP_ECHO,
    OP_NEW_BETS,
    SLOW,
    SOURCE_DIR,
    TestFailure,
    bet,
    check,
    connect,
    frame,
    new_bets_body,
)

# Values of one stored row, in file order.
ROW_KEYS = ("AGENCIA", "NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO")


def raise_nofile(wanted):
    """Raises this process's soft fd limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_status_kib(proc, field):
    """A `field:` (VmRSS, VmData, VmSize...) of the server's /proc status, in KiB."""
    with open("/proc/%d/status" % proc.proc.pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise TestFailure("no %s in /proc/%d/status" % (field, proc.proc.pid))


def echo_ok(port, body=b"ping", timeout=5.0):
    """A fresh connection gets its ECHO back verbatim: the server still serves."""
    c = connect(port)
    try:
        c.send_frame(OP_ECHO, body)
        op, got = c.recv_frame(timeout=timeout)
        check(op == OP_ECHO and got == body,
              "ECHO answered with opcode %d body %r" % (op, got[:64]))
    finally:
        c.close()


def send_batch(conn, bets, timeout=10.0):
    """Sends one NEW_BETS and returns the answer's opcode (body must be empty)."""
    conn.send_frame(OP_NEW_BETS, new_bets_body(bets))
    op, body = conn.recv_frame(timeout=timeout)
    check(op in (OP_BETS_RECV_SUCCESS, OP_BETS_RECV_FAIL),
          "NEW_BETS answered with opcode %d" % op)
    check(body == b"", "non-empty ACK body %r" % body[:64])
    return op


def dataset_rows(agency, limit=None):
    """The rows of datasets/agency-<n>.csv as bet dicts."""
    path = os.path.join(SOURCE_DIR, "datasets", "agency-%d.csv" % agency)
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for rec in csv.reader(f):
            if limit is not None and len(out) >= limit:
                break
            first, last, doc, birth, number = rec
            out.append(bet(agency, first, last, doc, birth, number))
    return out


_AWKWARD = ['O"Brien, Jr', "Peña", "Muñoz; Ñandú", "São, Paulo", "Zoë \"Z\""]


def synthetic_bets(agency, count, start=0):
    """count bets whose documents are unique across agencies (agency*10^7 + i),
    with some names that need CSV quoting, and a winner every 97 bets."""
    names = dataset_rows(1, limit=200)
    out = []
    for i in range(start, start + count):
        src = names[i % len(names)]
        first = _AWKWARD[i % len(_AWKWARD)] if i % 11 == 0 else src["NOMBRE"]
        number = 7574 if i % 97 == 0 else (i * 7919) % 10000
        out.append(bet(agency, first, src["APELLIDO"], agency * 10_000_000 + i,
                       "19%02d-%02d-%02d" % (50 + i % 50, 1 + i % 12, 1 + i % 28), number))
    return out


def chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def row_of(b):
    """The row the server must store for bet dict b."""
    return [str(b[k]) for k in ROW_KEYS]


def read_bets_file(path):
    """Rows of the storage file. Fails on a torn row: the file must be empty or
    end in \\r\\n, every row must end in \\r\\n and have exactly six fields."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return []
    check(data.endswith(b"\r\n"), "storage file does not end in \\r\\n: ...%r" % data[-80:])
    text = data.decode("utf-8")
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""))
    for rec in reader:
        check(len(rec) == 6, "row %d has %d fields: %r" % (reader.line_num, len(rec), rec))
        rows.append(rec)
    # Every row must be terminated by \r\n (not a bare \n): re-encode and compare.
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    check(out.getvalue() == text,
          "storage file is not in Python csv's dialect (QUOTE_MINIMAL, \\r\\n)")
    return rows


class PipelinedSender:
    """Sends batches of bets on one connection with up to `window` unanswered,
    reading the answers in order. Records, per batch index, 'ok', 'fail' or
    'unknown' (sent, then the connection died before its answer). Runs in a
    thread (start/join) or inline (run)."""

    def __init__(self, port, batches, window=8, first_index=0, name="sender"):
        self.port = port
        self.batches = batches
        self.window = window
        self.first_index = first_index
        self.name = name
        self.status = {}  # batch index -> 'ok' | 'fail' | 'unknown'
        self.next_index = first_index  # first batch not yet sent
        self.error = None
        self.elapsed = None
        self.confirmed = 0
        self._thread = None
        self._lock = threading.Lock()

    def run(self):
        t0 = time.monotonic()
        inflight = []
        sock = None
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30 * SLOW)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while self.next_index < len(self.batches) or inflight:
                while self.next_index < len(self.batches) and len(inflight) < self.window:
                    idx = self.next_index
                    sock.sendall(frame(OP_NEW_BETS, new_bets_body(self.batches[idx])))
                    inflight.append(idx)
                    self.next_index += 1
                while len(buf) < 5:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    buf += chunk
                op = buf[0]
                (length,) = struct.unpack_from("<i", buf, 1)
                if op not in (OP_BETS_RECV_SUCCESS, OP_BETS_RECV_FAIL) or length != 0:
                    raise TestFailure("%s: unexpected answer opcode %d length %d"
                                      % (self.name, op, length))
                buf = buf[5:]
                idx = inflight.pop(0)
                with self._lock:
                    self.status[idx] = "ok" if op == OP_BETS_RECV_SUCCESS else "fail"
                    if op == OP_BETS_RECV_SUCCESS:
                        self.confirmed += 1
        except (OSError, ConnectionError, TestFailure) as exc:
            self.error = exc
        finally:
            with self._lock:
                for idx in inflight:
                    self.status[idx] = "unknown"
            if sock is not None:
                sock.close()
            self.elapsed = time.monotonic() - t0
        return self

    def start(self):
        self._thread = threading.Thread(target=self.run, daemon=True, name=self.name)
        self._thread.start()
        return self

    def join(self, timeout=60.0):
        self._thread.join(timeout * SLOW)
        if self._thread.is_alive():
            raise TestFailure("%s still running after %.0fs" % (self.name, timeout * SLOW))
        return self

    def confirmed_count(self):
        with self._lock:
            return self.confirmed


def wait_until(cond, timeout, what, interval=0.01):
    """Polls cond() until true or the deadline (for state with no event to wait
    on, e.g. a counter kept by a sender thread); raises with `what`."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure("timed out after %.1fs waiting for %s" % (timeout * SLOW, what))
        time.sleep(interval)
