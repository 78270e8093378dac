#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora under test/fuzz/corpus/<target>/.

Run it from anywhere: python3 test/fuzz/make_seeds.py. It rewrites only the
seed files it names (prefix "seed-"), so crash reproducers and regression
cases kept in the same directories are left alone. Each target's input starts
with a few control bytes (see the target's header comment); the rest is the
byte stream or file under test.
"""

import csv
import io
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")

OP_NEW_BETS, OP_OK, OP_FAIL, OP_FINISHED, OP_WINNERS, OP_ECHO = range(6)
KEYS = ("AGENCIA", "NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO")


def i32(v):
    return struct.pack("<i", v)


def string(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return i32(len(s)) + s


def smap(pairs):
    return i32(len(pairs)) + b"".join(string(k) + string(v) for k, v in pairs)


def bet_pairs(agency, first, last, doc, birth, number):
    return list(zip(KEYS, (str(agency), first, last, str(doc), birth, str(number))))


def new_bets(maps, count=None):
    return i32(len(maps) if count is None else count) + b"".join(smap(m) for m in maps)


def frame(op, body, length=None):
    return bytes([op]) + i32(len(body) if length is None else length) + body


def protocol_input(stream, splits=(), errsel=0):
    """flags (split count | error-buffer selector << 3), split sizes, stream."""
    assert len(splits) <= 7
    return bytes([len(splits) | (errsel << 3)]) + bytes(splits) + stream


def dataset_rows(name, count):
    with open(os.path.join(ROOT, "datasets", name), "rb") as f:
        return f.read().split(b"\r\n")[:count]


def parse_dataset_row(raw):
    first, last, doc, birth, number = raw.decode("utf-8").split(",")
    return first, last, doc, birth, number


def python_csv(rows, lineterminator="\r\n"):
    out = io.StringIO()
    csv.writer(out, lineterminator=lineterminator).writerows(rows)
    return out.getvalue().encode("utf-8")


def protocol_seeds():
    real = [parse_dataset_row(r) for r in dataset_rows("agency-1.csv", 40)]
    one = bet_pairs(1, "Santiago Lionel", "Lorca", 30904465, "1999-03-17", 2201)
    batch = [bet_pairs(1, *r) for r in real]
    winner = bet_pairs(3, "Ana", "Pérez", 12345678, "2000-02-29", 7574)
    seeds = {
        "new_bets_one": protocol_input(frame(OP_NEW_BETS, new_bets([one]))),
        "new_bets_batch_split": protocol_input(frame(OP_NEW_BETS, new_bets(batch)), (3, 1, 7, 0)),
        "new_bets_bytewise": protocol_input(frame(OP_NEW_BETS, new_bets(batch[:3])), (1,)),
        "new_bets_winner_reordered": protocol_input(
            frame(OP_NEW_BETS, new_bets([list(reversed(winner))])), (2, 5), 1),
        "new_bets_empty": protocol_input(frame(OP_NEW_BETS, new_bets([]))),
        "new_bets_missing_key": protocol_input(frame(OP_NEW_BETS, new_bets([one[:5]]))),
        "new_bets_duplicated_key": protocol_input(
            frame(OP_NEW_BETS, new_bets([one[:5] + [("NOMBRE", "Otro")]]))),
        "new_bets_extra_key": protocol_input(
            frame(OP_NEW_BETS, new_bets([one + [("EXTRA", "x")]])), (), 2),
        "new_bets_feb30": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, "A", "B", 1, "2023-02-30", 1)]))),
        "new_bets_not_utf8": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, b"\xc3\x28", "B", 1, "1990-01-01", 1)]))),
        "new_bets_nul_name": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, b"A\x00B", "B", 1, "1990-01-01", 1)]))),
        "new_bets_doc_negative": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, "A", "B", -5, "1990-01-01", 1)]))),
        "new_bets_doc_over_int32": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, "A", "B", 2147483648, "1990-01-01", 1)]))),
        "new_bets_number_over_int32": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, "A", "B", 1, "1990-01-01", 2147483648)]))),
        "new_bets_number_negative": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, "A", "B", 1, "1990-01-01", -1)]))),
        "new_bets_agency_under_int32": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(-2147483649, "A", "B", 1, "1990-01-01", 1)]))),
        "new_bets_number_junk": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(1, "A", "B", 1, "1990-01-01", "12a")]))),
        "new_bets_agency_zero": protocol_input(
            frame(OP_NEW_BETS, new_bets([bet_pairs(0, "A", "B", 1, "1990-01-01", 1)])), (), 3),
        "new_bets_count_negative": protocol_input(frame(OP_NEW_BETS, i32(-1))),
        "new_bets_count_too_big": protocol_input(frame(OP_NEW_BETS, new_bets([one], 1000000))),
        "new_bets_string_past_end": protocol_input(
            frame(OP_NEW_BETS, i32(1) + i32(6) + i32(1000) + b"AGENCIA")),
        "new_bets_short_body": protocol_input(frame(OP_NEW_BETS, new_bets([one])[:-3])),
        "new_bets_trailing_bytes": protocol_input(frame(OP_NEW_BETS, new_bets([one]) + b"zz")),
        "finished_ok": protocol_input(frame(OP_FINISHED, i32(1))),
        "finished_twice_split": protocol_input(
            frame(OP_FINISHED, i32(5)) + frame(OP_FINISHED, i32(5)), (4, 3)),
        "finished_bad_length": protocol_input(frame(OP_FINISHED, i32(1) + b"\x00")),
        "finished_negative": protocol_input(frame(OP_FINISHED, i32(-1))),
        "winners_ok": protocol_input(frame(OP_WINNERS, i32(3) + b"".join(
            string(d) for d in ("30904465", "21689196", "0")))),
        "winners_empty": protocol_input(frame(OP_WINNERS, i32(0))),
        "winners_trailing": protocol_input(frame(OP_WINNERS, i32(1) + string("1") + b"x")),
        "winners_count_lies": protocol_input(frame(OP_WINNERS, i32(2) + string("1"))),
        "echo": protocol_input(frame(OP_ECHO, b"hello \x00\xff world"), (2,)),
        "answers": protocol_input(frame(OP_OK, b"") + frame(OP_FAIL, b""), (1, 0)),
        "len_minus_one": protocol_input(frame(OP_ECHO, b"", -1)),
        "len_int32_max": protocol_input(frame(OP_NEW_BETS, b"", 2147483647)),
        "len_over_cap": protocol_input(frame(OP_ECHO, b"", 64 * 1024 + 1)),
        "len_at_cap_truncated": protocol_input(frame(OP_ECHO, b"x" * 100, 64 * 1024)),
        "unknown_opcode": protocol_input(frame(6, b"")),
        "opcode_255_partial": protocol_input(b"\xff\x00"),
        "header_partial": protocol_input(b"\x00\x10\x00"),
        "stream_mixed": protocol_input(
            frame(OP_ECHO, b"ping") + frame(OP_NEW_BETS, new_bets(batch[:5]))
            + frame(OP_FINISHED, i32(1)) + frame(OP_NEW_BETS, new_bets([one]))[:20],
            (5, 9, 1, 200, 0), 1),
        "stream_then_garbage": protocol_input(frame(OP_FINISHED, i32(2)) + b"\x09garbage"),
    }
    return seeds


def csv_input(text, bufsel=0xFF, readsel=0xFF, errsel=0):
    """buffer-size selector, read-size selector, error-buffer selector, file."""
    return bytes([bufsel, readsel, errsel]) + text


def dataset_csv_seeds():
    real = b"\r\n".join(dataset_rows("agency-5.csv", 60)) + b"\r\n"
    quoted = python_csv([
        ["Juan \"el Tano\"", "Pérez, Gómez", "30904465", "1999-03-17", "2201"],
        ["Línea\ncon salto", "Otro\r\nMás", "1", "2000-02-29", "7574"],
        ["", "\"", "2", "1990-01-01", "0"],
        [""],
    ])
    return {
        "real_excerpt": csv_input(real),
        "real_excerpt_small_buffer": csv_input(real, 40, 7, 1),
        "real_lf_endings": csv_input(real.replace(b"\r\n", b"\n"), 0x90, 3),
        "quoted": csv_input(quoted),
        "quoted_small_reads": csv_input(quoted, 0x7F, 1, 2),
        "torn_row": csv_input(real[:200]),
        "torn_quote": csv_input(b"a,b,c,d,e\r\n\"unterminated,b,c,d,e\r\n", 0xFF, 5),
        "no_final_newline": csv_input(b"Ana,Paz,1,2000-01-01,5"),
        "blank_lines": csv_input(b"\r\n\n\r\nAna,Paz,1,2000-01-01,5\r\n\n\r"),
        "cr_alone": csv_input(b"a\rb,c\r\nd,e\r\n"),
        "quote_in_unquoted": csv_input(b"a\"b,c\r\nd,e\r\n"),
        "after_closing_quote": csv_input(b"\"a\"b,c\r\nd,e\r\n"),
        "too_many_fields": csv_input(b",".join([b"x"] * 17) + b"\r\nok,1\r\n"),
        "longer_than_buffer": csv_input(b"x" * 300 + b"\r\nshort,row\r\n", 0x20, 0x0F, 3),
        "empty": csv_input(b""),
        "bad_date_and_number": csv_input(b"A,B,1,2023-02-30,1\r\nA,B,1,1990-01-01,-1\r\n"
                                         b"A,B,99999999999,1990-01-01,1\r\n"),
    }


def storage_seeds():
    rows = [[1] + list(parse_dataset_row(r)) for r in dataset_rows("agency-2.csv", 40)]
    valid = python_csv(rows)
    tricky = python_csv([
        [3, "Juan \"el Tano\"", "Pérez, Gómez", "30904465", "1999-03-17", "7574"],
        [4, "Línea\ncon salto", "X", "1", "2000-02-29", "0"],
        [5, "", "", "", "", "2147483647"],
    ])
    return {
        "valid": csv_input(valid),
        "valid_stop_after_3": csv_input(valid, 0xFF, 3),
        "valid_small_buffer": csv_input(valid, 30, 0, 2),
        "tricky": csv_input(tricky, 0xFF, 0, 1),
        "torn_trailing_row": csv_input(valid[:-25]),
        "five_fields": csv_input(b"1,A,B,1,1990-01-01\r\n"),
        "agency_not_int": csv_input(b"x,A,B,1,1990-01-01,1\r\n"),
        "number_over_int32": csv_input(b"1,A,B,1,1990-01-01,2147483648\r\n"),
        "negative_values": csv_input(b"-1,A,B,-3,1990-01-01,-7\r\n"),
        "empty": csv_input(b""),
        "lf_only": csv_input(valid.replace(b"\r\n", b"\n")),
    }


def write(target, seeds):
    path = os.path.join(CORPUS, target)
    os.makedirs(path, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(path, "seed-" + name), "wb") as f:
            f.write(data)


def main():
    write("protocol", protocol_seeds())
    write("dataset_csv", dataset_csv_seeds())
    write("storage", storage_seeds())


if __name__ == "__main__":
    main()
