#!/usr/bin/env python3
"""One CSV row per scaling run directory (written by jobs/scaling.sbatch).

Each directory is named ``<mode>-r<ranks>-t<threads>`` and holds a ``metrics.jsonl`` of
``pfcr pretrain``. Seconds per round = mean of local_train + aggregate + communicate + server
(the "time" object, max over ranks) over the rounds after the first (round 0 pays one-time
allocation costs; it is kept when it is the only round); checkpoint time is left out. Shares
are each phase's part of that total. Efficiency is relative to the smallest rank count of the
same mode: strong T_b*R_b/(T*R), weak T_b/T. Standard library only (runs on compute nodes).

Usage: scaling_csv.py RUN_DIR... -o scaling.csv
"""
import argparse
import csv
import json
import os
import re
import sys

PHASES = ("local_train", "aggregate", "communicate", "server")
COLUMNS = ("mode", "ranks", "threads", "clients", "rounds", "seconds_per_round",
           "local_share", "aggregate_share", "communicate_share", "server_share", "efficiency")


def read_run(path):
    """Returns the row of one run directory (without efficiency)."""
    name = os.path.basename(os.path.normpath(path))
    m = re.fullmatch(r"(strong|weak)-r(\d+)-t(\d+)", name)
    if not m:
        sys.exit(f"{path}: expected a directory named <strong|weak>-r<ranks>-t<threads>")
    rounds = []
    with open(os.path.join(path, "metrics.jsonl")) as f:
        for n, line in enumerate(f, 1):
            d = json.loads(line)
            if d.get("event") == "round":
                rounds.append(d)
    if not rounds:
        sys.exit(f"{path}/metrics.jsonl: no round lines (did the run fail?)")
    timed = rounds[1:] if len(rounds) > 1 else rounds
    sums = {p: sum(r["time"][p] for r in timed) for p in PHASES}
    total = sum(sums.values())
    row = {"mode": m[1], "ranks": int(m[2]), "threads": int(m[3]),
           "clients": len(rounds[0]["train_loss"]), "rounds": len(rounds),
           "seconds_per_round": total / len(timed)}
    for p, col in zip(PHASES, ("local_share", "aggregate_share", "communicate_share", "server_share")):
        row[col] = sums[p] / total if total > 0 else 0.0
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories <mode>-r<ranks>-t<threads>")
    ap.add_argument("-o", "--output", required=True, help="CSV file to write")
    args = ap.parse_args()
    rows = sorted((read_run(p) for p in args.runs), key=lambda r: (r["mode"], r["ranks"]))
    for mode in {r["mode"] for r in rows}:
        same = [r for r in rows if r["mode"] == mode]
        base = min(same, key=lambda r: r["ranks"])
        for r in same:
            if mode == "strong":
                r["efficiency"] = base["seconds_per_round"] * base["ranks"] / (r["seconds_per_round"] * r["ranks"])
            else:
                r["efficiency"] = base["seconds_per_round"] / r["seconds_per_round"]
    with open(args.output, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    print(f"scaling_csv: {len(rows)} runs -> {args.output}")


if __name__ == "__main__":
    main()
