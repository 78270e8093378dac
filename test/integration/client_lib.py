"""Helpers for the client's integration tests.

FrameProxy sits between a client and the real server and records every frame
the client sends (so the tests measure what reaches the server), and can hold
the stream after N whole frames plus part of the next one. FakeServer plays a
misbehaving server from a script. Both use threads and blocking sockets; nobody
sleeps to synchronise.
"""

import csv
import os
import socket
import struct
import threading

from harness import SLOW, SOURCE_DIR, TestFailure, check


class FrameProxy:
    """Forwards loopback TCP from clients to 127.0.0.1:upstream_port.

    Client-to-server bytes are cut into frames; each is recorded as
    (opcode, frame length with header, bet count for NEW_BETS) before it is
    forwarded. With hold_after=n, after n frames only the first `partial` bytes
    of the next frame go through and everything later is swallowed.
    """

    def __init__(self, upstream_port, hold_after=None, partial=0):
        self.upstream_port = upstream_port
        self.hold_after = hold_after
        self.partial = partial
        self.frames = []
        self.cond = threading.Condition()
        self.held = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            self.socks += [client, up]
            threading.Thread(target=self._up, args=(client, up), daemon=True).start()
            threading.Thread(target=self._down, args=(up, client), daemon=True).start()

    def _up(self, client, up):
        buf = b""
        forwarded = 0
        holding = False
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if holding:
                    continue
                buf += data
                while len(buf) >= 5:
                    (length,) = struct.unpack_from("<i", buf, 1)
                    if length < 0 or len(buf) < 5 + length:
                        break
                    fr, buf = buf[:5 + length], buf[5 + length:]
                    count = struct.unpack_from("<i", fr, 5)[0] if fr[0] == 0 else None
                    if self.hold_after is not None and forwarded >= self.hold_after:
                        up.sendall(fr[:self.partial])
                        holding = True
                        with self.cond:
                            self.held = True
                            self.cond.notify_all()
                        break
                    up.sendall(fr)
                    forwarded += 1
                    with self.cond:
                        self.frames.append((fr[0], len(fr), count))
                        self.cond.notify_all()
        except OSError:
            pass
        # The client is gone: the server sees the connection close, with
        # whatever partial frame it got.
        for s in (up, client):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _down(self, up, client):
        try:
            while True:
                data = up.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def wait_held(self, timeout=10.0):
        with self.cond:
            if not self.cond.wait_for(lambda: self.held, timeout * SLOW):
                raise TestFailure("the proxy never reached its hold point")

    def new_bets(self):
        with self.cond:
            return [(n, count) for op, n, count in self.frames if op == 0]

    def close(self):
        self.listener.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class FakeServer:
    """Accepts one connection and runs script(conn) on it in a thread.

    conn is a harness-like object with recv_frame() and send(bytes). Any
    exception in the script is kept and re-raised by join().
    """

    def __init__(self, script):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.listener.settimeout(20 * SLOW)
            sock, _ = self.listener.accept()
            sock.settimeout(20 * SLOW)
            with sock:
                self.script(_FakeConn(sock))
        except Exception as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
        finally:
            self.listener.close()

    def join(self, timeout=20.0):
        self.thread.join(timeout * SLOW)
        check(not self.thread.is_alive(), "fake server script still running")
        if self.error is not None:
            raise self.error


class _FakeConn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self.buf += chunk

    def recv_frame(self):
        self._need(5)
        (length,) = struct.unpack_from("<i", self.buf, 1)
        self._need(5 + length)
        op, body = self.buf[0], self.buf[5:5 + length]
        self.buf = self.buf[5 + length:]
        return op, body

    def send(self, data):
        self.sock.sendall(data)

    def wait_closed(self):
        """Returns once the client closes its end."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return


def link_datasets(workdir):
    """workdir/datasets -> the bundled datasets (the client's default paths)."""
    os.symlink(os.path.join(SOURCE_DIR, "datasets"), os.path.join(workdir, "datasets"))


def dataset_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f)]


def storage_rows(path):
    """Rows of the server's bets.csv, refusing anything that is not whole rows."""
    with open(path, "rb") as f:
        data = f.read()
    check(data == b"" or data.endswith(b"\r\n"), "bets.csv does not end with a whole row")
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f)]
