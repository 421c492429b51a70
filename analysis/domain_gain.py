#!/usr/bin/python3
"""Per-domain gain of one method over a baseline (e.g. PFCR pre-training over local only):
for every domain, its test users, the baseline's and the method's mean ± sample std over seeds
of one test metric, and the paired difference (method − baseline, matched by seed) as
mean ± std with the number of seeds where the method is better. Domains sorted by users, so
the sparse ones come first. Prints Markdown (and writes it with --md).

It reads results.json only (analysis/pfcr_runs.py checks it); run names give method and seed
(`<method>-s<seed>`, as in configs/paper/matrix.txt and configs/synth-study/matrix.txt).

Usage: analysis/domain_gain.py runs/synth-study/runs/* --baseline local --method pfcr-full
       [--metric recall@10] [--md gain.md]
"""
import argparse
import sys

import numpy as np

from pfcr_runs import METRICS, RunError, load_results


def by_seed(runs, method):
    """{seed: results.json} of one method; errors if it is missing."""
    out = {r["_seed"]: r for r in runs if r["_method"] == method}
    if not out:
        raise RunError(f"no run of method '{method}' among the given directories")
    return out


def fmt(values, digits):
    a = np.asarray(values, dtype=float)
    if a.size > 1:
        return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"
    return f"{a.mean():.{digits}f}"


def table(runs, baseline, method, metric, digits):
    base, meth = by_seed(runs, baseline), by_seed(runs, method)
    seeds = sorted(set(base) & set(meth))
    if not seeds:
        raise RunError(f"no seed has both '{baseline}' and '{method}'")
    label = dict(METRICS).get(metric, metric)
    domains = list(base[seeds[0]]["domains"])
    users = {d: base[seeds[0]]["domains"][d].get("test_rows", 0) for d in domains}
    lines = [f"| domain | test users | {baseline} {label} | {method} {label} | "
             f"difference (paired) | better in |",
             "|---|--:|--:|--:|--:|--:|"]
    for d in sorted(domains, key=lambda d: (users[d], d)) + ["mean"]:
        def value(r):
            part = r["mean_test"] if d == "mean" else r["domains"][d]["test"]
            return float(part[metric])
        b = [value(base[s]) for s in seeds]
        m = [value(meth[s]) for s in seeds]
        diff = [x - y for x, y in zip(m, b)]
        wins = sum(x > 0 for x in diff)
        name = "**mean over domains**" if d == "mean" else d
        lines.append(f"| {name} | {users.get(d, '')} | {fmt(b, digits)} | {fmt(m, digits)} | "
                     f"{'+' if np.mean(diff) >= 0 else ''}{fmt(diff, digits)} | "
                     f"{wins}/{len(seeds)} seeds |")
    return "\n".join(lines) + "\n", seeds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="pfcr run output directories")
    ap.add_argument("--baseline", required=True, help="method name of the baseline (e.g. local)")
    ap.add_argument("--method", required=True, help="method name compared with it (e.g. pfcr-full)")
    ap.add_argument("--metric", default="recall@10", choices=[m for m, _ in METRICS])
    ap.add_argument("--digits", type=int, default=4)
    ap.add_argument("--md", help="also write the Markdown table here")
    args = ap.parse_args()
    try:
        runs = [load_results(d) for d in args.runs]
        text, seeds = table(runs, args.baseline, args.method, args.metric, args.digits)
    except RunError as e:
        print(f"domain_gain.py: {e}", file=sys.stderr)
        return 1
    print(f"seeds: {' '.join(str(s) for s in seeds)}\n")
    print(text, end="")
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
