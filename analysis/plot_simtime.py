#!/usr/bin/python3
"""Validation accuracy against simulated time (the virtual clock, docs/METHOD.md section 12)
from pre-training runs with `federation.eval_every` > 0: one line per run, one colour per method
(run directory name without `-s<seed>`), x = `sim_time_s` of the "valid" events of
metrics.jsonl (or pretrain/metrics.jsonl of a `pfcr run` directory) on a log scale, in seconds,
minutes or hours (whichever suits the longest run), y = --metric (default recall@10).

Also a table (markdown, printed and with --table written) per method, mean ± sample std over
seeds: final validation metric, simulated time at the end, time to target (the first "valid"
event at or above --target; default: 95 % of the final mean of --baseline, the method named
`sync` if present), client updates aggregated, clients dropped by cause and wasted
client-hours, clients whose update was never aggregated. A run that never reaches the target counts as not reaching it (shown as n/k).

Usage: analysis/plot_simtime.py RUN_DIR... --out simtime.png [--table simtime.md]
       [--target 0.55] [--baseline sync] [--metric ndcg@10]
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pfcr_runs import RunError, method_of, read_jsonl  # noqa: E402
from plotting import run_plot_parser, save_figure  # noqa: E402

CAUSES = ("deadline", "unavailable", "overcommit", "stale")


def load(run_dir, metric):
    """(valid [(sim_time_s, value)], steps [round/server_step events]) of one run."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        path = os.path.join(run_dir, "pretrain", "metrics.jsonl")
    lines = read_jsonl(path)
    steps = [d for d in lines if d.get("event") in ("round", "server_step")]
    valid = [(d["sim_time_s"], d[metric]) for d in lines
             if d.get("event") == "valid" and metric in d and "sim_time_s" in d]
    if not steps or "sim_time_s" not in steps[0]:
        raise RunError(f"{path}: no round or server_step events with sim_time_s")
    if not valid:
        raise RunError(f"{path}: no 'valid' events with {metric} (set federation.eval_every)")
    return valid, steps


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    sd = np.std(xs, ddof=1) if len(xs) > 1 else 0.0
    return f"{np.mean(xs):.4g} ± {sd:.2g}"


def main():
    ap = run_plot_parser(__doc__.split("\n")[0], "validation metric on the y axis",
                         "skip run directories without metrics.jsonl")
    ap.add_argument("--table", help="also write the markdown table here")
    ap.add_argument("--target", type=float, help="target validation value (time to target)")
    ap.add_argument("--baseline", default="sync",
                    help="method whose final mean x 0.95 is the default target")
    args = ap.parse_args()
    runs = {}
    for d in args.runs:
        try:
            runs.setdefault(method_of(d)[0], []).append((d, *load(d, args.metric)))
        except (RunError, OSError) as e:
            if not args.skip_missing:
                sys.exit(f"plot_simtime: {e}")
            print(f"warning: {e}", file=sys.stderr)
    if not runs:
        sys.exit("plot_simtime: no run to plot")
    target = args.target
    if target is None:
        base = runs.get(args.baseline)
        if not base:
            sys.exit(f"plot_simtime: no --target and no '{args.baseline}' runs for the default")
        target = 0.95 * float(np.mean([v[-1][1] for _, v, _ in base]))

    longest = max(v[-1][0] for rs in runs.values() for _, v, _ in rs)
    unit, scale = (("hours", 3600.0) if longest >= 7200 else
                   ("minutes", 60.0) if longest >= 120 else ("seconds", 1.0))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rows = []
    for i, (method, rs) in enumerate(sorted(runs.items())):
        c = colors[i % len(colors)]
        finals, ends, ttt, updates, wasted, never = [], [], [], [], [], []
        drops = {k: [] for k in CAUSES}
        for j, (d, valid, steps) in enumerate(rs):
            t = np.array([x for x, _ in valid]) / scale
            y = np.array([v for _, v in valid])
            ax.plot(t, y, color=c, alpha=0.8, lw=1.2, label=method if j == 0 else None)
            finals.append(y[-1])
            ends.append(steps[-1]["sim_time_s"] / scale)
            hit = [x for x, v in valid if v >= target]
            ttt.append(hit[0] / scale if hit else None)
            updates.append(sum(len(s["clients"]) for s in steps))
            n_clients = len(steps[0]["train_loss"])
            never.append(n_clients - len({k for s in steps for k in s["clients"]}))
            wasted.append(sum(s.get("wasted_client_s", 0.0) for s in steps) / 3600.0)
            for k in CAUSES:
                drops[k].append(sum(s.get("dropped", {}).get(k, 0) for s in steps))
        reached = sum(x is not None for x in ttt)
        rows.append([method, str(len(rs)), mean_sd(finals), mean_sd(ends),
                     mean_sd(ttt) + ("" if reached == len(rs) else f" ({reached}/{len(rs)})"),
                     mean_sd(updates),
                     ", ".join(f"{k} {np.mean(drops[k]):.0f}" for k in CAUSES
                               if np.mean(drops[k]) > 0) or "—",
                     mean_sd(wasted), mean_sd(never)])
    ax.axhline(target, color="grey", ls=":", lw=1, label=f"target {target:.4f}")
    ax.set_xscale("log")
    ax.set_xlabel(f"simulated time ({unit}, log scale)")
    ax.set_ylabel(f"validation {args.metric}")
    ax.set_title(args.title or f"validation {args.metric} against simulated time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, args.out)

    head = ["method", "seeds", f"final valid {args.metric}", f"sim time at end ({unit})",
            f"time to {args.metric} ≥ {target:.4f} ({unit})", "updates aggregated",
            "dropped (mean per run)", "wasted client-hours", "clients never aggregated"]
    table = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    table += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    print(table, end="")
    if args.table:
        with open(args.table, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
