"""Shared helpers for the loopback integration tests.

The tests start the real binaries (build/bin/server, build/bin/client) on free
loopback ports and talk to them over TCP. Nothing here sleeps to synchronise:
every wait is for a condition (a log line, a frame, an exit) with a deadline.

Environment:
  TP0_BIN_DIR     where the binaries are (set by ctest)
  TP0_SOURCE_DIR  the source root (set by ctest)
  TP0_WRAPPER     optional command prefixed to each binary, e.g. valgrind
"""

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SOURCE_DIR = os.environ.get(
    "TP0_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BIN_DIR = os.path.abspath(os.environ.get("TP0_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin")))
WRAPPER = shlex.split(os.environ.get("TP0_WRAPPER", ""))
# Under valgrind everything is ~20x slower: stretch every deadline.
SLOW = 20.0 if WRAPPER else 1.0
# The wrapper's exit code for its own findings (valgrind --error-exitcode=99).
# run_tests fails a test when one of its processes exits with it, even where
# the test itself did not look at that exit code (e.g. a stop() in cleanup).
WRAPPER_ERROR_EXIT = int(os.environ.get("TP0_WRAPPER_ERROR_EXIT", "99"))
_started = []  # Procs whose exit code run_tests has not checked yet

OP_NEW_BETS = 0
OP_BETS_RECV_SUCCESS = 1
OP_BETS_RECV_FAIL = 2
OP_FINISHED = 3
OP_WINNERS = 4
OP_ECHO = 5

ACTION_RE = re.compile(r"action: (?P<action>[^|]+?) \| result: (?P<result>[^|]+?)(?P<rest>( \| [^|]*)*)$")


class TestFailure(AssertionError):
    pass


def check(cond, message):
    """assert that survives python -O and says what went wrong."""
    if not cond:
        raise TestFailure(message)


def free_port():
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tmpdir():
    path = tempfile.mkdtemp(prefix="tp0-test-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def parse_action(line):
    """(action, result, {key: value}) for an `action:` line, else None.

    Mirrors the course's black-box parser: the line is split on '|' and every
    piece after the first two must be `key: value`.
    """
    idx = line.find("action: ")
    if idx < 0:
        return None
    pieces = line[idx:].split(" | ")
    if len(pieces) < 2 or not pieces[1].startswith("result: "):
        raise TestFailure("malformed action line: %r" % line)
    action = pieces[0][len("action: "):]
    result = pieces[1][len("result: "):]
    if result not in ("success", "fail", "in_progress"):
        raise TestFailure("bad result in line: %r" % line)
    fields = {}
    for piece in pieces[2:]:
        key, sep, value = piece.partition(": ")
        if not sep:
            raise TestFailure("piece without 'key: value' in line: %r" % line)
        fields[key] = value
    if line[idx:].count("|") != len(pieces) - 1:
        raise TestFailure("stray '|' in line: %r" % line)
    return action, result, fields


class Proc:
    """A child process whose stdout+stderr lines are collected by a thread."""

    def __init__(self, argv, cwd, env, name):
        self.name = name
        self.argv = argv
        self.lines = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            WRAPPER + argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        _started.append(self)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if os.environ.get("TP0_VERBOSE"):
                sys.stderr.write("[%s] %s\n" % (self.name, line))
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_line(self, pattern, timeout=10.0, start=0):
        """The first line (from index `start`) matching regex `pattern`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if self._eof:
                    raise TestFailure(
                        "%s exited before printing /%s/; output:\n%s"
                        % (self.name, pattern, self.tail())
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(
                        "%s: no line /%s/ within %.1fs; output:\n%s"
                        % (self.name, pattern, timeout * SLOW, self.tail())
                    )
                self._cond.wait(left)

    def wait_count(self, pattern, count, timeout=10.0):
        """Waits until `count` lines match `pattern`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while True:
                n = sum(1 for line in self.lines if rx.search(line))
                if n >= count:
                    return n
                if self._eof:
                    raise TestFailure(
                        "%s exited with %d/%d lines /%s/; output:\n%s"
                        % (self.name, n, count, pattern, self.tail())
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(
                        "%s: %d/%d lines /%s/ within %.1fs; output:\n%s"
                        % (self.name, n, count, pattern, timeout * SLOW, self.tail())
                    )
                self._cond.wait(left)

    def count(self, pattern):
        rx = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if rx.search(line))

    def matching(self, pattern):
        rx = re.compile(pattern)
        with self._cond:
            return [line for line in self.lines if rx.search(line)]

    def actions(self):
        """Every action line, parsed (raises on a malformed one)."""
        with self._cond:
            lines = list(self.lines)
        return [a for a in (parse_action(line) for line in lines) if a is not None]

    def tail(self, n=40):
        return "\n".join(self.lines[-n:])

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=10.0):
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %.1fs; output:\n%s"
                              % (self.name, timeout * SLOW, self.tail()))
        self._thread.join(timeout * SLOW)
        return rc

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._thread.join(5)

    def rss_kib(self):
        """Resident set size of the process, from /proc (valgrind: of valgrind)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def _clean_env(extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def start_server(workdir, env=None, args=None, port=None, wait=True, name="server"):
    """Starts build/bin/server in workdir on a free loopback port.

    Unless env says otherwise: SERVER_LISTEN_ADDRESS=127.0.0.1,
    STORAGE_PATH=<workdir>/bets.csv, and a config path that does not exist (so
    only defaults and the environment apply).
    """
    env = dict(env or {})
    if port is None:
        port = int(env.get("SERVER_PORT", 0)) or free_port()
    env.setdefault("SERVER_PORT", port)
    env.setdefault("SERVER_LISTEN_ADDRESS", "127.0.0.1")
    env.setdefault("STORAGE_PATH", os.path.join(workdir, "bets.csv"))
    argv = [os.path.join(BIN_DIR, "server")] + (
        list(args) if args is not None else [os.path.join(workdir, "no-such-config.ini")]
    )
    proc = Proc(argv, workdir, _clean_env(env), name)
    proc.port = int(env["SERVER_PORT"])
    proc.storage_path = env["STORAGE_PATH"]
    if wait:
        proc.wait_line(r"action: listen \| result: success", timeout=10)
    return proc


def start_client(workdir, env=None, args=None, name="client"):
    """Starts build/bin/client with cwd=workdir and only the given environment."""
    # No argument: the client looks for ./config.yaml in workdir, finds none,
    # and runs from the environment alone.
    argv = [os.path.join(BIN_DIR, "client")] + (list(args) if args is not None else [])
    return Proc(argv, workdir, _clean_env(env), name)


def stop(proc, timeout=10.0):
    """SIGTERM and the exit code (for cleanup paths: never raises on a dead proc)."""
    proc.signal(signal.SIGTERM)
    return proc.wait_exit(timeout)


# ---- wire encoding -------------------------------------------------------

def enc_int(i):
    return struct.pack("<i", i)


def enc_str(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return enc_int(len(s)) + s


def enc_map(pairs):
    if isinstance(pairs, dict):
        pairs = list(pairs.items())
    return enc_int(len(pairs)) + b"".join(enc_str(k) + enc_str(v) for k, v in pairs)


def bet(agency, first, last, doc, birth, number):
    return {
        "AGENCIA": str(agency),
        "NOMBRE": first,
        "APELLIDO": last,
        "DOCUMENTO": str(doc),
        "NACIMIENTO": birth,
        "NUMERO": str(number),
    }


def new_bets_body(bets):
    return enc_int(len(bets)) + b"".join(enc_map(b) for b in bets)


def finished_body(agency):
    return enc_int(agency)


def frame(opcode, body):
    return bytes([opcode]) + enc_int(len(body)) + body


def decode_winners(body):
    (count,) = struct.unpack_from("<i", body, 0)
    pos, docs = 4, []
    for _ in range(count):
        (n,) = struct.unpack_from("<i", body, pos)
        pos += 4
        docs.append(body[pos:pos + n].decode("utf-8"))
        pos += n
    check(pos == len(body), "trailing bytes in WINNERS body")
    return docs


class Conn:
    """A blocking TCP connection with frame helpers and deadlines."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout * SLOW)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, body=b""):
        self.sock.sendall(frame(opcode, body))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed")
        self.buf += chunk

    def recv_exact(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_frame(self, timeout=5.0):
        """(opcode, body) of the next frame; raises on close or timeout."""
        deadline = time.monotonic() + timeout * SLOW
        while len(self.buf) < 5:
            self._fill(deadline)
        opcode = self.buf[0]
        (length,) = struct.unpack_from("<i", self.buf, 1)
        check(length >= 0, "negative frame length from peer")
        while len(self.buf) < 5 + length:
            self._fill(deadline)
        body = self.buf[5:5 + length]
        self.buf = self.buf[5 + length:]
        return opcode, body

    def expect_silence(self, seconds):
        """Asserts that nothing arrives for `seconds` (used only to check that a
        parked FINISHED gets no early answer; it is the assertion, not a sync)."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(1)
        except socket.timeout:
            return
        raise TestFailure("expected no data, got %r" % chunk)

    def expect_closed(self, timeout=5.0):
        """Asserts the peer closes (EOF or reset) before the deadline; any
        bytes that arrive first are returned."""
        deadline = time.monotonic() + timeout * SLOW
        got = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("connection still open after %.1fs" % (timeout * SLOW))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


def connect(port, host="127.0.0.1", timeout=10.0):
    return Conn(port, host, timeout)


def _wrapper_findings():
    """Processes that exited with the wrapper's error code since the last call.

    Still-running ones stay listed for the next call; a process killed with
    SIGKILL never reaches valgrind's report, so it cannot be judged here.
    """
    if not WRAPPER:
        del _started[:]
        return []
    found, running = [], []
    for p in _started:
        rc = p.proc.poll()
        if rc is None:
            running.append(p)
        elif rc == WRAPPER_ERROR_EXIT:
            found.append(p)
    _started[:] = running
    return found


def run_tests(tests):
    """Runs test functions in order; prints a summary line; exits 1 on failure."""
    passed = failed = 0
    for fn in tests:
        t0 = time.monotonic()
        error = None
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - report every failure
            error = exc
        bad = _wrapper_findings()
        if bad:
            error = TestFailure("%s exited %d (wrapper error)%s; output:\n%s" % (
                ", ".join(p.name for p in bad), WRAPPER_ERROR_EXIT,
                "" if error is None else " after: %s" % error,
                "\n".join(p.tail(80) for p in bad)))
        if error is not None:
            failed += 1
            print("FAIL %s (%.2fs): %s: %s" % (fn.__name__, time.monotonic() - t0,
                                               type(error).__name__, error), flush=True)
        else:
            passed += 1
            print("ok   %s (%.2fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
