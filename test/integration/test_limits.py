"""The server's limits, against the real binary over loopback: the connection
cap, the idle timeout (parked FINISHED exempt), the frame length cap without
allocating what a peer claims, and the output watermark (see also
test_adversarial.test_echo_flood_never_read)."""

import os
import resource
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from adv_lib import (  # noqa: E402
    echo_ok,
    proc_status_kib,
    raise_nofile,
    synthetic_bets,
    wait_until,
)
from harness import (  # noqa: E402
    OP_ECHO,
    OP_FINISHED,
    OP_NEW_BETS,
    OP_WINNERS,
    SLOW,
    WRAPPER,
    TestFailure,
    check,
    connect,
    decode_winners,
    enc_int,
    finished_body,
    frame,
    new_bets_body,
    run_tests,
)
from test_adversarial import expect_close_with, server, shutdown_rows  # noqa: E402

# Log line patterns for the limits (the reasons are the server's wording).
MAX_CONN_LINE = (r"action: accept_connection \| result: fail \| ip: 127\.0\.0\.1 \| "
                 r"error: too many connections \(MAX_CONNECTIONS 5\)$")
IDLE_LINE = (r"action: close_connection \| result: fail \| ip: 127\.0\.0\.1 \| "
             r"error: idle timeout, no whole frame for 1 s$")


def _echo_on(conn, body=b"x"):
    conn.send_frame(OP_ECHO, body)
    op, got = conn.recv_frame()
    check(op == OP_ECHO and got == body, "echo on an open connection failed")


def test_max_connections():
    with server({"MAX_CONNECTIONS": 5}) as srv:
        conns = [connect(srv.port) for _ in range(5)]
        for c in conns:
            _echo_on(c)
        for attempt in range(20):
            start = len(srv.lines)
            extra = connect(srv.port)
            t0 = time.monotonic()
            # Even a frame it sends at once must not be answered.
            try:
                extra.send_frame(OP_ECHO, b"over the cap")
            except OSError:
                pass
            got = extra.expect_closed(timeout=3)
            took = time.monotonic() - t0
            extra.close()
            check(got == b"", "connection over the cap got %r" % got[:32])
            check(took < 1.0 * SLOW, "connection over the cap closed after %.2fs" % took)
            srv.wait_line(MAX_CONN_LINE, start=start)
        for c in conns:
            _echo_on(c)  # the five admitted ones are untouched
        conns.pop().close()

        # The freed slot becomes usable once the server has seen the close.
        def reuse():
            try:
                echo_ok(srv.port)
                return True
            except (OSError, TestFailure, ConnectionError):
                return False

        wait_until(reuse, 5, "a free slot after closing one connection", interval=0.05)
        for c in conns:
            c.close()
        check(shutdown_rows(srv) == [], "storage not empty")


def test_idle_timeout():
    with server({"IDLE_TIMEOUT": 1, "AGENCIES": 2}) as srv:
        parked = connect(srv.port)
        parked.send_frame(OP_FINISHED, finished_body(1))
        start = len(srv.lines)
        t0 = time.monotonic()
        idle = connect(srv.port)
        partial = connect(srv.port)
        partial.send_raw(frame(OP_ECHO, b"never finished")[:7])
        got = idle.expect_closed(timeout=5)
        t_idle = time.monotonic() - t0
        check(got == b"", "idle connection got %r" % got)
        got = partial.expect_closed(timeout=5)
        check(got == b"", "half-frame connection got %r" % got)
        idle.close()
        partial.close()
        print("  idle connection closed after %.2fs" % t_idle, flush=True)
        check(t_idle >= 0.9, "idle connection closed after only %.2fs" % t_idle)
        check(t_idle <= 3.5 * SLOW, "idle connection closed after %.2fs" % t_idle)
        srv.wait_count(IDLE_LINE, 2)
        check(srv.count(IDLE_LINE) == 2, "idle lines: %r" % srv.matching(IDLE_LINE))
        del start

        # A slow peer completing no frame within the timeout is closed too, even
        # though bytes keep arriving (slowloris).
        slow = connect(srv.port)
        data = frame(OP_ECHO, b"s" * 100)
        closed = False
        t0 = time.monotonic()
        for i in range(len(data)):
            try:
                slow.send_raw(data[i:i + 1])
            except OSError:
                closed = True
                break
            if time.monotonic() - t0 > 4 * SLOW:
                break
            time.sleep(0.1)  # the pacing is the scenario
        if not closed:
            slow.expect_closed(timeout=1)
        slow.close()
        check(time.monotonic() - t0 < 5 * SLOW, "dribbling connection was not timed out")

        # A busy peer that completes a frame every 300 ms stays open.
        busy = connect(srv.port)
        for _ in range(10):
            _echo_on(busy)
            time.sleep(0.3)  # the pacing is the scenario
        busy.close()

        # The parked FINISHED connection outlived all of that; agency 2 finishes.
        parked.expect_silence(0.1)
        check(time.monotonic() - t0 > 3, "test ran too fast to mean anything")
        other = connect(srv.port)
        other.send_frame(OP_FINISHED, finished_body(2))
        for c in (parked, other):
            op, body = c.recv_frame(timeout=10)
            check(op == OP_WINNERS and decode_winners(body) == [], "winners: %d %r" % (op, body))
            c.close()
        check(shutdown_rows(srv) == [], "storage not empty")


def test_unread_winners_timed_out():
    """After the raffle, a parked peer that never reads a WINNERS frame larger
    than the kernel's socket buffers (420,000 winners, ~5.9 MB) is closed by
    the idle timeout once its output stops draining, with a line saying so;
    the other agency is served normally."""
    from adv_lib import PipelinedSender
    from harness import bet
    per_batch, batches = 7000, 60
    batch = [bet(1, "N", "A", 2147483647, "1990-01-01", 7574)] * per_batch
    with server({"AGENCIES": 2, "IDLE_TIMEOUT": 1}) as srv:
        s = PipelinedSender(srv.port, [batch] * batches, window=2).run()
        check(s.error is None and s.confirmed == batches, "setup failed: %r" % s.error)
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", srv.port))
        slow.sendall(frame(OP_FINISHED, finished_body(1)))
        other = connect(srv.port)
        other.send_frame(OP_FINISHED, finished_body(2))
        op, body = other.recv_frame(timeout=20)
        check(op == OP_WINNERS and decode_winners(body) == [], "agency 2 winners")
        other.close()
        srv.wait_line(r"action: winners_sent \| result: success \| ip: 127\.0\.0\.1 \| "
                      r"agency: 1 \| cantidad: %d$" % (per_batch * batches), timeout=20)
        t0 = time.monotonic()
        srv.wait_line(r"action: close_connection \| result: fail \| ip: 127\.0\.0\.1 \| "
                      r"error: peer did not read its replies for 1 s$", timeout=10)
        print("  unread WINNERS dropped %.2fs after the raffle" % (time.monotonic() - t0),
              flush=True)
        slow.close()
        echo_ok(srv.port)
        check(len(shutdown_rows(srv)) == per_batch * batches, "storage row count")


def test_idle_timeout_zero_disables():
    with server({"IDLE_TIMEOUT": 0}) as srv:
        c = connect(srv.port)
        c.expect_silence(2.5)
        _echo_on(c)
        c.close()
        check(srv.count(r"idle timeout") == 0, "idle line with IDLE_TIMEOUT=0")
        check(shutdown_rows(srv) == [], "storage not empty")


def test_frame_cap_configured():
    with server({"MAX_FRAME_BYTES": 1000}) as srv:
        c = connect(srv.port)
        _echo_on(c, b"z" * 1000)
        start = len(srv.lines)
        c.send_frame(OP_ECHO, b"z" * 1001)
        expect_close_with(srv, c, r"frame length 1001 exceeds the cap of 1000", start)
        c.close()
        c = connect(srv.port)
        start = len(srv.lines)
        big = new_bets_body(synthetic_bets(1, 20))
        check(len(big) > 1000, "test batch too small")
        c.send_frame(OP_NEW_BETS, big)
        expect_close_with(srv, c, r"frame length %d exceeds the cap of 1000" % len(big), start)
        c.close()
        echo_ok(srv.port)
        check(shutdown_rows(srv) == [], "storage not empty")


def _claim_without_sending(srv, n_conns, claimed, sent_body):
    """n_conns connections each send a header claiming `claimed` bytes and then
    only sent_body of it. Returns (conns, VmData growth KiB, VmRSS growth KiB)."""
    echo_ok(srv.port)
    data0 = proc_status_kib(srv, "VmData")
    rss0 = srv.rss_kib()
    conns = []
    for _ in range(n_conns):
        c = connect(srv.port)
        c.send_raw(bytes([OP_ECHO]) + enc_int(claimed) + sent_body)
        conns.append(c)
    # The server answers a fresh peer, so it has been through its loop since.
    echo_ok(srv.port)
    echo_ok(srv.port)
    data1 = proc_status_kib(srv, "VmData")
    rss1 = srv.rss_kib()
    return conns, data1 - data0, rss1 - rss0


def test_claimed_length_not_allocated():
    """Headers claiming the whole cap, with little behind them: the server must
    wait for the bytes, not reserve memory for them."""
    raise_nofile(4096)
    with server({"SERVER_LISTEN_BACKLOG": 256}) as srv:
        n = 200
        conns, d_data, d_rss = _claim_without_sending(srv, n, 1048576, b"a" * 100)
        print("  %d x 1 MiB claimed: VmData +%d KiB, VmRSS +%d KiB" % (n, d_data, d_rss),
              flush=True)
        check(d_data < 50 * 1024, "VmData grew by %d KiB for %d MiB claimed" % (d_data, n))
        check(d_rss < 50 * 1024, "VmRSS grew by %d KiB" % d_rss)
        # The claims are honoured once the bytes arrive.
        for c in conns[:3]:
            c.send_raw(b"b" * (1048576 - 100))
            op, body = c.recv_frame(timeout=10)
            check(op == OP_ECHO and body == b"a" * 100 + b"b" * (1048576 - 100), "big echo")
        for c in conns:
            c.close()
        echo_ok(srv.port)
        check(shutdown_rows(srv) == [], "storage not empty")

    with server({"MAX_FRAME_BYTES": 2**31 - 1}) as srv:
        n = 16
        conns, d_data, d_rss = _claim_without_sending(srv, n, 2**31 - 1, b"a" * 1000)
        print("  %d x 2 GiB claimed: VmData +%d KiB, VmRSS +%d KiB" % (n, d_data, d_rss),
              flush=True)
        check(srv.alive(), "server died")
        check(d_data < 64 * 1024, "VmData grew by %d KiB for %d x 2 GiB claimed" % (d_data, n))
        check(d_rss < 64 * 1024, "VmRSS grew by %d KiB" % d_rss)
        for c in conns:
            c.close()
        echo_ok(srv.port)
        check(shutdown_rows(srv) == [], "storage not empty")


def test_watermark_configured_small():
    """With OUTPUT_HIGH_WATERMARK=64 KiB a non-reading ECHO flooder is paused
    early; once it reads, it gets every answer back in order."""
    with server({"OUTPUT_HIGH_WATERMARK": 65536}) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.setblocking(False)
        body_len = 16384
        sent_frames = 0
        pending = b""
        total = 0
        last = time.monotonic()
        while total < (256 << 20):
            if not pending:
                pending = frame(OP_ECHO, bytes([sent_frames % 251]) * body_len)
                sent_frames += 1
            try:
                n = s.send(pending)
            except BlockingIOError:
                n = 0
            if n:
                total += n
                pending = pending[n:]
                last = time.monotonic()
            elif time.monotonic() - last > 1.0 * SLOW:
                break
            else:
                select.select([], [s], [], 0.05)
        print("  server paused after %.1f MiB" % (total / 1048576.0), flush=True)
        check(total < (64 << 20), "server kept reading %d MiB" % (total >> 20))
        echo_ok(srv.port)
        # Finish the frame in flight, then read every answer back in order.
        s.setblocking(True)
        s.settimeout(10 * SLOW)
        # The server reads again only once we read, so the rest of the frame in
        # flight goes from another thread.
        rest = threading.Thread(target=s.sendall, args=(pending,), daemon=True)
        rest.start()
        received = 0
        buf = b""
        expect_len = 5 + body_len
        while received < sent_frames:
            chunk = s.recv(1 << 20)
            check(chunk != b"", "server closed after %d of %d echoes" % (received, sent_frames))
            buf += chunk
            while len(buf) >= expect_len:
                fr, buf = buf[:expect_len], buf[expect_len:]
                check(fr == frame(OP_ECHO, bytes([received % 251]) * body_len),
                      "echo %d came back wrong" % received)
                received += 1
        rest.join(10 * SLOW)
        s.close()
        check(buf == b"", "trailing %d bytes" % len(buf))
        check(shutdown_rows(srv) == [], "storage not empty")


def _cpu_seconds(srv):
    with open("/proc/%d/stat" % srv.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors():
    """With its fd limit at 32 the server runs out of descriptors while peers
    keep connecting: it logs the accept error, pauses accepting instead of
    spinning, keeps serving the connections it has, and accepts again once
    descriptors are free."""
    if WRAPPER:
        print("  skipped under a wrapper (its own descriptors count)", flush=True)
        return
    raise_nofile(4096)
    with server({"SERVER_LISTEN_BACKLOG": 64}) as srv:
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (32, 32))
        conns = []
        for _ in range(60):  # the kernel completes these from the backlog
            conns.append(connect(srv.port))
        srv.wait_line(r"action: accept_connection \| result: fail \| error: .*"
                      r"[Tt]oo many open files.*accepting again in 1 s$")
        first = conns[0]
        _echo_on(first)
        cpu0, t0 = _cpu_seconds(srv), time.monotonic()
        first.expect_silence(1.5)
        cpu = _cpu_seconds(srv) - cpu0
        print("  server CPU while out of descriptors: %.2fs in %.2fs"
              % (cpu, time.monotonic() - t0), flush=True)
        check(cpu < 0.5, "server spins while out of descriptors: %.2fs CPU" % cpu)
        _echo_on(first)
        for c in conns[1:40]:
            c.close()
        # Every later connection is served once descriptors are free again.
        for c in conns[40:]:
            _echo_on(c)
        for c in conns[40:]:
            c.close()
        echo_ok(srv.port)
        first.close()
        check(shutdown_rows(srv) == [], "storage not empty")


COMMIT_FAIL_LINE = r"action: storage_commit \| result: fail \| error: cannot write /dev/full"


def test_failing_disk_retried_once_a_second():
    """A disk that refuses writes: nothing is acknowledged, the server keeps
    serving others, and the commit is retried by its 1 s timer only, not by
    every read (which would hammer the disk and flood the log)."""
    if not os.access("/dev/full", os.W_OK):
        print("  /dev/full not writable here: nothing to test")
        return
    with server(env={"STORAGE_PATH": "/dev/full"}) as srv:
        agency = connect(srv.port)
        agency.send_frame(OP_NEW_BETS, new_bets_body(synthetic_bets(1, 3)))
        srv.wait_line(COMMIT_FAIL_LINE)
        t0 = time.monotonic()
        other = connect(srv.port)
        echoes = 0
        # Keep the server reading until the retry timer has fired twice more.
        while srv.count(COMMIT_FAIL_LINE) < 3:
            _echo_on(other)
            echoes += 1
            check(time.monotonic() - t0 < 10 * SLOW, "the commit was not retried")
        elapsed = time.monotonic() - t0
        failures = srv.count(COMMIT_FAIL_LINE)
        print("  %d commit failures in %.1fs while %d echoes were served"
              % (failures, elapsed, echoes))
        check(echoes >= 20, "too few echoes served: %d" % echoes)
        check(failures <= elapsed + 2, "commit retried per read: %d in %.1fs" % (failures, elapsed))
        agency.sock.settimeout(0)
        try:
            early = agency.sock.recv(1)
        except BlockingIOError:
            early = None
        check(early is None, "a batch was answered although it never reached the disk")
        other.close()
        agency.close()


def test_throttled_reader_timed_out():
    """A peer that floods frames and never reads: the server stops reading from
    it at the watermark, and the idle timeout closes it with the real reason."""
    env = {"IDLE_TIMEOUT": 1, "OUTPUT_HIGH_WATERMARK": 4096}
    with server(env=env) as srv:
        flooder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flooder.connect(("127.0.0.1", srv.port))
        flooder.setblocking(False)
        echo = frame(OP_ECHO, b"y" * 1024)
        sent = 0
        # Until the kernel buffers on both sides are full: the server stopped reading.
        while True:
            try:
                sent += flooder.send(echo)
            except BlockingIOError:
                break
            except OSError:
                break
            check(sent < 64 << 20, "the server kept reading from a peer that never reads")
        srv.wait_line(r"action: close_connection \| result: fail \| ip: 127\.0\.0\.1 \| "
                      r"error: peer did not read its replies for 1 s$", timeout=10)
        check(srv.count(IDLE_LINE) == 0, "throttled peer logged as idle")
        echo_ok(srv.port)
        flooder.close()
        check(shutdown_rows(srv) == [], "storage not empty")


if __name__ == "__main__":
    run_tests([
        test_max_connections,
        test_idle_timeout,
        test_unread_winners_timed_out,
        test_idle_timeout_zero_disables,
        test_frame_cap_configured,
        test_claimed_length_not_allocated,
        test_watermark_configured_small,
        test_out_of_descriptors,
        test_failing_disk_retried_once_a_second,
        test_throttled_reader_timed_out,
    ])
