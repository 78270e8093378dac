#!/usr/bin/env python3
"""The C CSV reader/writer and Python's csv module agree, in both directions.

Python writes rows (the awkward fixture rows plus random ones full of commas,
quotes, line breaks and non-ASCII text) with csv.writer; storage_copy_tool
(argv[1]) reads them with the C reader and stores them with the C storage;
then the stored file must be byte-for-byte what Python writes for the same
rows, and csv.reader must read back exactly the original rows.
"""
import csv
import io
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
from make_fixtures import AWKWARD_ROWS  # noqa: E402

PIECES = ["a", "Z", " ", ",", '"', "'", "\n", "\r\n", "ñ", "é", "Ł", "🎲", "|", ";", "x y", '""']


def random_text(rng):
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))


def random_row(rng):
    # agency and number are stored as integers: use canonical decimal forms.
    return [
        str(rng.randint(-2**31, 2**31 - 1)),
        random_text(rng),
        random_text(rng),
        "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 10))),
        random_text(rng),
        str(rng.randint(-2**31, 2**31 - 1)),
    ]


def main():
    tool = sys.argv[1]
    rng = random.Random(4)
    rows = [list(r) for r in AWKWARD_ROWS] + [random_row(rng) for _ in range(3000)]
    source = io.StringIO(newline="")
    csv.writer(source).writerows(rows)
    data = source.getvalue().encode("utf-8")

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bets.csv")
        proc = subprocess.run([tool, out], input=data, capture_output=True, timeout=60)
        if proc.returncode != 0:
            sys.exit(f"storage_copy_tool failed ({proc.returncode}): {proc.stderr.decode()}")
        with open(out, "rb") as f:
            stored = f.read()

    if stored != data:
        at = next((i for i, (a, b) in enumerate(zip(stored, data)) if a != b),
                  min(len(stored), len(data)))
        sys.exit(f"stored file differs from Python's csv output at byte {at}: "
                 f"C {stored[at:at + 40]!r} vs Python {data[at:at + 40]!r}")
    back = list(csv.reader(io.StringIO(stored.decode("utf-8"), newline="")))
    if back != rows:
        sys.exit("csv.reader did not read back the original rows")
    print(f"ok: {len(rows)} rows, {len(stored)} bytes identical")


if __name__ == "__main__":
    main()
