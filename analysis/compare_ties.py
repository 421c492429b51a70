#!/usr/bin/python3
"""How much the tie rule moves the test metrics: every run's fine-tuned checkpoint (best state,
as results.json) re-evaluated with `pfcr evaluate --set eval.ties=RULE` for each other rule,
beside the run's own results.json (its eval.ties, by default `expected`). The models are the
same, so the differences are the rule's alone. Prints a Markdown table per rule: the mean over
runs of each domain's Recall@K / NDCG@K under the run's rule and under RULE, and the mean and
range of the difference.

Usage:
  /usr/bin/python3 analysis/compare_ties.py runs/paper/*-s1 [--rules lower-id pessimistic optimistic]
The evaluations are written next to each run as ties-<rule>.json (reused when present).
Environment: PFCR (default build/release/bin/pfcr), MPIRUN (default mpirun), RANKS (default 1).
"""
import argparse
import json
import os
import subprocess
import sys


def evaluate(run, rule, pfcr, mpirun, ranks):
    out = os.path.join(run, f"ties-{rule}.json")
    if not os.path.exists(out):
        ckpt = os.path.join(run, "finetune", "ckpt")
        cmd = [mpirun, "-n", str(ranks), pfcr, "evaluate", "-q", ckpt, "--set", f"eval.ties={rule}",
               "--json", out]
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"compare_ties: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return json.load(open(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories (with results.json and finetune/ckpt)")
    ap.add_argument("--rules", nargs="+", default=["lower-id", "pessimistic", "optimistic"])
    ap.add_argument("--metrics", nargs="+", default=["recall@10", "ndcg@10", "recall@50", "ndcg@50"])
    args = ap.parse_args()
    pfcr = os.environ.get("PFCR", "build/release/bin/pfcr")
    mpirun = os.environ.get("MPIRUN", "mpirun")
    ranks = int(os.environ.get("RANKS", "1"))
    runs = [r.rstrip("/") for r in args.runs if os.path.exists(os.path.join(r, "results.json"))]
    if not runs:
        sys.exit("compare_ties: no run directory with a results.json")
    base = {r: json.load(open(os.path.join(r, "results.json"))) for r in runs}
    own = sorted({b.get("ties", "lower-id") for b in base.values()})
    print(f"{len(runs)} runs; their own rule: {', '.join(own)}")
    domains = list(base[runs[0]]["domains"])
    for rule in args.rules:
        other = {r: evaluate(r, rule, pfcr, mpirun, ranks) for r in runs}
        print(f"\n{own[0]} vs {rule} (mean over {len(runs)} runs; difference = {rule} - {own[0]}: mean [min, max])\n")
        print("| domain | metric | " + own[0] + " | " + rule + " | difference |")
        print("|---|---|--:|--:|--:|")
        for d in domains + ["mean"]:
            for m in args.metrics:
                def value(j):
                    return j["mean_test"][m] if d == "mean" else j["domains"][d]["test"][m]
                a = [value(base[r]) for r in runs]
                b = [value(other[r]) for r in runs]
                diff = [y - x for x, y in zip(a, b)]
                print(f"| {d} | {m} | {sum(a) / len(a):.4f} | {sum(b) / len(b):.4f} | "
                      f"{sum(diff) / len(diff):+.4f} [{min(diff):+.4f}, {max(diff):+.4f}] |")


if __name__ == "__main__":
    main()
