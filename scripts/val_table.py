#!/usr/bin/env python3
"""Regenerate the VAL table of models/README.md from models/tiny.val.csv.

Keeps the first row, roughly one row per 30 training minutes, and the last row.
Usage: scripts/val_table.py [CSV] [CARD]
"""
import csv
import sys

csv_path = sys.argv[1] if len(sys.argv) > 1 else "models/tiny.val.csv"
card_path = sys.argv[2] if len(sys.argv) > 2 else "models/README.md"
rows, seen = [], set()
for r in csv.DictReader(open(csv_path)):
    if r["step"] not in seen:
        seen.add(r["step"])
        rows.append(r)
keep, next_min = [], 0.0
for i, r in enumerate(rows):
    m = float(r["minutes"])
    if i == 0 or i == len(rows) - 1 or m >= next_min:
        keep.append(r)
        next_min = m + 30.0
cols = [c for c in rows[0] if c.startswith("rel_")]
head = "| step | training hours | " + " | ".join("λ = " + c[4:] for c in cols) + " |"
lines = [head, "|" + "---:|" * (2 + len(cols))]
for r in keep:
    vals = " | ".join(f"{float(r[c]):.3f}" for c in cols)
    lines.append(f"| {r['step']} | {float(r['minutes']) / 60:.2f} | {vals} |")
card = open(card_path).read()
a, b = card.index("<!-- VAL-BEGIN -->"), card.index("<!-- VAL-END -->")
card = card[: a + len("<!-- VAL-BEGIN -->")] + "\n" + "\n".join(lines) + "\n" + card[b:]
open(card_path, "w").write(card)
print("\n".join(lines))
