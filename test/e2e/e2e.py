"""Shared helpers for the end-to-end tests: the real images under docker compose.

The tests drive `docker compose` the way the course's black-box tests do: they
read `docker compose logs --no-color`, parse every `action: x | result: y |
key: value` line (with the integration harness's parser, so a malformed line
fails), fail on any `result: fail` that is not the point of the test, and check
every container's exit code. Nothing sleeps to synchronise: each wait polls a
condition (a log line, a container state) against a deadline.

Every test runs the system named tp0 (the compose files' `name:`), whose
container names and subnet are fixed, so the tests take a machine-wide lock and
run one at a time; each one tears the project down (containers, network,
volumes) in a finally block, also when it fails.

Without a working Docker the tests exit 77, which ctest reports as skipped,
unless TP0_REQUIRE_E2E=1, which turns that into a failure (CI sets it).

Environment:
  TP0_SOURCE_DIR     the source root (set by ctest)
  TP0_REQUIRE_E2E=1  a missing Docker fails instead of skipping
  TP0_VERBOSE=1      echo every docker command
"""

import contextlib
import csv
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = os.environ.get(
    "TP0_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
sys.path.insert(0, os.path.join(SOURCE_DIR, "test", "integration"))
from harness import TestFailure, check, parse_action  # noqa: E402

SKIP_CODE = 77
PROJECT = "tp0"
NETWORK = "tp0_testing_net"
SERVER_IMAGE = "server:latest"
CLIENT_IMAGE = "client:latest"
NETCAT_IMAGE = "tp0-netcat:latest"
# A stand-in echo server (plain or altering), built from test/e2e/echo.
ECHO_IMAGE = "tp0-e2e-echo:latest"
GENERATOR = os.path.join(SOURCE_DIR, "scripts", "generar-compose.sh")
VALIDATOR = os.path.join(SOURCE_DIR, "scripts", "validar-echo-server.sh")
LOCK_PATH = os.path.join(tempfile.gettempdir(), "tp0-e2e.lock")
# Winners (number 7574) in the bundled datasets, agencies 1 to 5.
DATASET_WINNERS = {1: 2, 2: 3, 3: 3, 4: 2, 5: 0}
DATASET_TOTAL = 78697

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# `docker compose logs --timestamps`: "<service>  | <RFC 3339 time> <line>".
LOG_RE = re.compile(r"^(?P<svc>[A-Za-z0-9_.-]+)\s*\| (?P<ts>\d{4}-\d\d-\d\dT[0-9:.]+Z) ?(?P<line>.*)$")


def say(msg):
    print(msg, flush=True)


def run(argv, timeout=120, ok=(0,), input_bytes=None, env=None):
    """Runs a command; returns (rc, stdout, stderr) as text. Raises unless the
    exit code is in `ok` (ok=None accepts any)."""
    if os.environ.get("TP0_VERBOSE"):
        sys.stderr.write("+ %s\n" % " ".join(argv))
    try:
        p = subprocess.run(argv, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise TestFailure("timed out after %ss: %s" % (timeout, " ".join(argv)))
    out = p.stdout.decode("utf-8", errors="replace")
    err = p.stderr.decode("utf-8", errors="replace")
    if ok is not None and p.returncode not in ok:
        raise TestFailure("exit code %d from %s\nstdout:\n%s\nstderr:\n%s"
                          % (p.returncode, " ".join(argv), out[-4000:], err[-4000:]))
    return p.returncode, out, err


def docker_problem():
    """Why Docker cannot run the tests, or None when it can."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        p = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if p.returncode != 0:
            return "the Docker engine does not answer: %s" % p.stderr.decode(errors="replace").strip()
        p = subprocess.run(["docker", "compose", "version"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if p.returncode != 0:
            return "docker compose v2 is not installed"
    except subprocess.TimeoutExpired:
        return "docker did not answer within 30 s"
    return None


def require_docker():
    """Exits 77 (skipped) when Docker is unusable, or 1 if TP0_REQUIRE_E2E=1."""
    why = docker_problem()
    if why is None:
        return
    if os.environ.get("TP0_REQUIRE_E2E") == "1":
        say("FAIL: e2e tests required (TP0_REQUIRE_E2E=1) but %s" % why)
        sys.exit(1)
    say("SKIPPED: %s; the e2e tests need Docker with compose v2" % why)
    sys.exit(SKIP_CODE)


@contextlib.contextmanager
def machine_lock():
    """One e2e test at a time on this machine, across ctest runs."""
    with open(LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def wait_until(pred, timeout, what, interval=0.25):
    """Polls pred() until it returns a true value (returned) or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def generate(output, clients, mode=None):
    """Runs scripts/generar-compose.sh; returns its stdout."""
    argv = [GENERATOR, output, str(clients)] + ([mode] if mode else [])
    _, out, _ = run(argv, timeout=30)
    return out


def image_id(name):
    rc, out, _ = run(["docker", "image", "inspect", "--format", "{{.Id}}", name], ok=None)
    return out.strip() if rc == 0 else None


def write_override(path, services):
    """A compose override file (JSON is YAML) adding environment variables and
    volumes: services = {name: {"environment": {...}, "volumes": [...]}}.
    Compose merges environment by variable and volumes by target path."""
    doc = {"services": {}}
    for name, spec in services.items():
        entry = {}
        if spec.get("environment"):
            entry["environment"] = {k: str(v) for k, v in spec["environment"].items()}
        if spec.get("volumes"):
            entry["volumes"] = list(spec["volumes"])
        doc["services"][name] = entry
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    return path


class LogLine:
    __slots__ = ("service", "ts", "text", "action")

    def __init__(self, service, ts, text):
        self.service = service
        self.ts = ts
        self.text = text
        self.action = parse_action(text)  # raises on a malformed action line

    def __repr__(self):
        return "%s | %s %s" % (self.service, self.ts, self.text)


class System:
    """The compose project tp0 described by `files`; used as a context manager
    that tears everything down on exit, whatever happened."""

    def __init__(self, files, name="tp0"):
        self.files = list(files)
        self.name = name
        self._base = ["docker", "compose", "-p", name]
        for f in self.files:
            self._base += ["-f", f]

    def compose(self, *args, timeout=180, ok=(0,)):
        return run(self._base + list(args), timeout=timeout, ok=ok)

    def __enter__(self):
        # Leftovers of an earlier run that was killed would clash on names.
        purge()
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def down(self):
        self.compose("down", "-v", "-t", "10", "--remove-orphans", timeout=120, ok=None)
        purge()

    def up(self, *services, build=False):
        args = ["up", "-d"] + (["--build"] if build else []) + list(services)
        self.compose(*args, timeout=900 if build else 180)

    def config(self):
        """The merged configuration, as `docker compose config` resolves it."""
        _, out, _ = self.compose("config", "--format", "json", timeout=60)
        return json.loads(out)

    def ps(self):
        """{service: {"State": ..., "ExitCode": ..., "Name": ...}} of every container."""
        _, out, _ = self.compose("ps", "-a", "--format", "json", timeout=60)
        out = out.strip()
        if not out:
            return {}
        # Compose prints one object per line (newer) or one array (older).
        rows = json.loads(out) if out.startswith("[") else [json.loads(l) for l in out.splitlines() if l.strip()]
        return {r["Service"]: r for r in rows}

    def wait_exited(self, services, timeout):
        """Waits until every service in `services` has exited; returns ps()."""
        services = list(services)

        def done():
            states = self.ps()
            missing = [s for s in services if s not in states]
            check(not missing, "no container for %s" % missing)
            return states if all(states[s]["State"] == "exited" for s in services) else None

        return wait_until(done, timeout, "%s to exit" % ", ".join(services), interval=0.5)

    def exit_code(self, service):
        state = self.ps().get(service)
        check(state is not None, "no container for %s" % service)
        check(state["State"] == "exited", "%s is %s, not exited" % (service, state["State"]))
        return int(state["ExitCode"])

    def logs(self, *services):
        """Every log line of the given services (all when none), in order per
        service, parsed; a malformed action line raises."""
        _, out, _ = self.compose("logs", "--no-color", "--timestamps", *services, timeout=300)
        lines = []
        for raw in ANSI_RE.sub("", out).splitlines():
            if not raw.strip():
                continue
            m = LOG_RE.match(raw)
            check(m is not None, "unexpected line in docker compose logs: %r" % raw)
            lines.append(LogLine(m.group("svc"), m.group("ts"), m.group("line")))
        return lines

    def actions(self, *services):
        """[(service, action, result, fields, LogLine)] of the action lines."""
        out = []
        for ln in self.logs(*services):
            if ln.action is not None:
                action, result, fields = ln.action
                out.append((ln.service, action, result, fields, ln))
        return out

    def wait_action(self, service, action, timeout, result="success", pred=None):
        """Waits for service to log `action` with `result` (and pred(fields))."""

        def found():
            for _, a, r, f, ln in self.actions(service):
                if a == action and r == result and (pred is None or pred(f)):
                    return ln
            return None

        return wait_until(found, timeout, "%s to log action: %s | result: %s" % (service, action, result))


def purge():
    """Removes whatever a project named tp0 (or anything else holding its fixed
    container names or network) left behind."""
    run(["docker", "compose", "-p", PROJECT, "down", "-v", "-t", "10", "--remove-orphans"],
        timeout=120, ok=None)
    _, out, _ = run(["docker", "ps", "-aq", "--filter", "network=" + NETWORK], ok=None)
    ids = out.split()
    if ids:
        run(["docker", "rm", "-f"] + ids, timeout=120, ok=None)
    run(["docker", "network", "rm", NETWORK], ok=None)


def check_no_fail(actions, until=None, allow=()):
    """No `result: fail` line (before the timestamp `until` when given), except
    for (service, action) pairs in `allow`."""
    bad = [ln for svc, a, r, _, ln in actions
           if r == "fail" and (until is None or ln.ts < until) and (svc, a) not in allow]
    check(not bad, "result: fail in the logs:\n%s" % "\n".join(map(repr, bad[:20])))


def check_exit_codes(states, services=None):
    """Every listed container (all when None) exited with code 0."""
    bad = []
    for svc, st in sorted(states.items()):
        if services is not None and svc not in services:
            continue
        if st["State"] != "exited" or int(st["ExitCode"]) != 0:
            bad.append("%s: %s (exit code %s)" % (svc, st["State"], st["ExitCode"]))
    check(not bad, "containers not exited with code 0: %s" % "; ".join(bad))


def main(test_fn):
    """Entry point of each test script: skip or fail without Docker, take the
    lock, run, print the outcome and the wall time, exit 0 or 1."""
    require_docker()
    t0 = time.monotonic()
    name = os.path.basename(sys.argv[0])
    with machine_lock():
        try:
            with tempfile.TemporaryDirectory(prefix="tp0-e2e-") as tmp:
                test_fn(tmp)
        except Exception as exc:  # noqa: BLE001 - report every failure
            say("FAIL %s (%.1fs): %s: %s" % (name, time.monotonic() - t0, type(exc).__name__, exc))
            sys.exit(1)
    say("ok   %s (%.1fs)" % (name, time.monotonic() - t0))
    sys.exit(0)


def die_events(since, until):
    """{container name: exit code} of the tp0 containers that died between the
    two times (seconds since the epoch), from the engine's event log."""
    _, out, _ = run(["docker", "events", "--since", "%.3f" % since, "--until", "%.3f" % until,
                     "--filter", "type=container", "--filter", "event=die",
                     "--filter", "label=com.docker.compose.project=" + PROJECT,
                     "--format", "{{json .}}"], timeout=60)
    codes = {}
    for line in out.splitlines():
        if line.strip():
            ev = json.loads(line)
            attrs = ev["Actor"]["Attributes"]
            codes[attrs["name"]] = int(attrs["exitCode"])
    return codes


def load_dataset(agency):
    """The rows of datasets/agency-<n>.csv as tuples."""
    with open(os.path.join(SOURCE_DIR, "datasets", "agency-%d.csv" % agency), newline="", encoding="utf-8") as f:
        return [tuple(r) for r in csv.reader(f)]


def copy_storage(system, dest_dir):
    """The server's bets file, copied out of its container: {agency: [row...]}
    with rows as (first_name, last_name, document, birthdate, number)."""
    import csv
    dest = os.path.join(dest_dir, "bets.csv")
    system.compose("cp", "server:/app/data/bets.csv", dest, timeout=120)
    rows = {}
    with open(dest, newline="", encoding="utf-8") as f:
        for r in csv.reader(f):
            check(len(r) == 6, "bets.csv row with %d fields: %r" % (len(r), r))
            rows.setdefault(int(r[0]), []).append(tuple(r[1:]))
    return rows


def check_bets_run(system, tmp, datasets, env_bets, timeout=600):
    """Exercises 6 to 8: the agencies `datasets` (ids whose bundled dataset they
    send) and `env_bets` ({id: {NOMBRE..NUMERO}}) run to completion against one
    server with AGENCIES = their number. Checks every log line, the raffle's
    order, each agency's winners, the stored rows, and every exit code."""
    agencies = sorted(list(datasets) + list(env_bets))
    clients = ["client%d" % i for i in agencies]
    system.wait_action("server", "listen", 60)
    states = system.wait_exited(clients, timeout)
    check(states["server"]["State"] == "running", "the server is %s" % states["server"]["State"])
    check_exit_codes(states, clients)
    acts = system.actions()
    check_no_fail(acts)
    by_svc = {}
    for svc, a, r, f, ln in acts:
        by_svc.setdefault(svc, []).append((a, r, f, ln))

    # Server, in its own log's order (timestamps across containers are not
    # comparable: each program flushes its log once per loop iteration): every
    # batch confirmed and every agency FINISHED before the one sorteo, then
    # each agency sent its own winners.
    server = by_svc.get("server", [])
    sorteos = [i for i, (a, r, _, _) in enumerate(server) if a == "sorteo"]
    check(len(sorteos) == 1, "%d sorteo lines, expected exactly 1" % len(sorteos))
    s_idx = sorteos[0]
    expected = sum(len(load_dataset(a)) for a in datasets) + len(env_bets)
    received = [int(f["cantidad"]) for a, r, f, _ in server if a == "apuesta_recibida"]
    before = sum(int(f["cantidad"]) for a, r, f, _ in server[:s_idx] if a == "apuesta_recibida")
    check(sum(received) == expected,
          "apuesta_recibida cantidad adds up to %d, expected %d" % (sum(received), expected))
    check(before == expected, "only %d of %d bets confirmed before the sorteo" % (before, expected))
    stored = sum(1 for a, _, _, _ in server if a == "apuesta_almacenada")
    check(stored == expected, "%d apuesta_almacenada lines, expected %d" % (stored, expected))
    stored_env = {(f["dni"], f["numero"]) for a, _, f, _ in server if a == "apuesta_almacenada"}
    finished = sorted(int(f["agency"]) for a, _, f, _ in server[:s_idx] if a == "finished")
    check(finished == agencies, "FINISHED before the sorteo from agencies %s, expected %s" % (finished, agencies))
    check(not any(a == "finished" for a, _, _, _ in server[s_idx:]), "a FINISHED logged after the sorteo")
    check(not any(a == "winners_sent" for a, _, _, _ in server[:s_idx]), "winners sent before the sorteo")
    want_winners = {i: DATASET_WINNERS[i] for i in datasets}
    want_winners.update({i: 1 if bet["NUMERO"] == "7574" else 0 for i, bet in env_bets.items()})
    sent_winners = {int(f["agency"]): int(f["cantidad"]) for a, _, f, _ in server if a == "winners_sent"}
    check(sent_winners == want_winners, "the server sent winners %r, expected %r" % (sent_winners, want_winners))

    # Clients: their bets sent and confirmed, then their own winners.
    for i in agencies:
        lines = by_svc.get("client%d" % i, [])
        names = [a for a, _, _, _ in lines]
        if i in datasets:
            sent = [f for a, _, f, _ in lines if a == "apuestas_enviadas"]
            check(len(sent) == 1, "client%d: %d apuestas_enviadas lines" % (i, len(sent)))
            n = len(load_dataset(i))
            check(int(sent[0]["cantidad"]) == n,
                  "client%d sent %s bets, its dataset has %d" % (i, sent[0]["cantidad"], n))
        else:
            bet = env_bets[i]
            sent = [f for a, _, f, _ in lines if a == "apuesta_enviada"]
            check(len(sent) == 1, "client%d: %d apuesta_enviada lines" % (i, len(sent)))
            f = sent[0]
            check(f.get("dni") == bet["DOCUMENTO"] and f.get("numero") == bet["NUMERO"],
                  "client%d: apuesta_enviada %r, expected dni %s numero %s"
                  % (i, f, bet["DOCUMENTO"], bet["NUMERO"]))
            check((bet["DOCUMENTO"], bet["NUMERO"]) in stored_env,
                  "no apuesta_almacenada on the server for dni %s" % bet["DOCUMENTO"])
        got = [f for a, _, f, _ in lines if a == "consulta_ganadores"]
        check(len(got) == 1, "client%d: %d consulta_ganadores lines (%s)" % (i, len(got), names[-5:]))
        check(int(got[0]["cant_ganadores"]) == want_winners[i],
              "client%d: cant_ganadores %s, expected %d" % (i, got[0]["cant_ganadores"], want_winners[i]))
        check(names.index("consulta_ganadores") > max(names.index(x) for x in names
                                                      if x in ("apuestas_enviadas", "apuesta_enviada")),
              "client%d: winners logged before its bets were confirmed" % i)

    # The stored rows: each agency's, in its order, exactly once.
    rows = copy_storage(system, tmp)
    check(sorted(rows) == agencies, "bets.csv holds agencies %s, expected %s" % (sorted(rows), agencies))
    for i in datasets:
        check(rows[i] == load_dataset(i), "bets.csv rows of agency %d differ from its dataset" % i)
    for i, bet in env_bets.items():
        want = [(bet["NOMBRE"], bet["APELLIDO"], bet["DOCUMENTO"], bet["NACIMIENTO"], bet["NUMERO"])]
        check(rows[i] == want, "bets.csv rows of agency %d: %r, expected %r" % (i, rows[i], want))

    stop_server(system)


def stop_server(system):
    """The deliberate end of a run: SIGTERM the server; it exits 0 after
    logging its shutdown, with no failure on the way."""
    t0 = time.monotonic()
    system.compose("stop", "-t", "10", "server", timeout=60)
    took = time.monotonic() - t0
    code = system.exit_code("server")
    check(code == 0, "the server exited with code %d after SIGTERM" % code)
    check(took < 9.5, "stopping the server took %.1fs: SIGTERM was not enough" % took)
    acts = system.actions("server")
    check_no_fail(acts)
    check(acts and acts[-1][1] == "shutdown" and acts[-1][2] == "success",
          "the server's last action line is not shutdown success: %r" % (acts[-1:],))
