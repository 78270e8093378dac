#!/usr/bin/env python3
"""Writes the CSV fixtures of the core unit tests with Python's csv module.

Run from this directory: python3 make_fixtures.py. The default dialect writes
QUOTE_MINIMAL fields and \r\n row ends; the C writer must produce the same
bytes (test_csv.c and test_storage.c compare them byte for byte).
"""
import csv

# agency, first_name, last_name, document, birthdate, number: awkward names on purpose.
AWKWARD_ROWS = [
    ["1", "Santiago Lionel", "Lorca", "30904465", "1999-03-17", "7574"],
    ["2", "Ana, María", 'O\'Brien "Tito"', "12345678", "2024-02-29", "0"],
    ["3", "José Ñandú", "Müller-Łukasz 🎲", "2147483647", "1900-01-01", "2147483647"],
    ["4", '"quoted"', "line\nbreak", "1", "2100-12-31", "42"],
    ["5", "crlf\r\ninside", "trailing,", "99", "2000-01-01", "123"],
    ["6", ",", '"', "7", "2000-01-01", "1"],
    ["7", " leading space", "tab\there", "0000000001", "2000-01-01", "-5"],
]

if __name__ == "__main__":
    with open("awkward.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(AWKWARD_ROWS)
