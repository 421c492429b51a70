#!/usr/bin/env python3
"""Plots a scaling study (the CSV of jobs/scaling.sbatch) to one PNG with three panels:
seconds per round, parallel efficiency, and the aggregation share of a round
(aggregate + communicate), each against MPI ranks, one line per mode (strong, weak).
Optionally prints the table as Markdown. Needs Debian's python3-pandas and python3-matplotlib.

Usage: scaling_plot.py scaling.csv -o scaling.png [--markdown]
"""
import argparse

import matplotlib

matplotlib.use("Agg")  # no display on compute nodes
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from plotting import save_figure  # noqa: E402


def plot(df, path, title):
    """Draws the three panels and saves them to path."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for mode, g in df.groupby("mode"):
        g = g.sort_values("ranks")
        label = f"{mode} ({', '.join(str(c) for c in g['clients'])} clients)"
        axes[0].plot(g["ranks"], g["seconds_per_round"], "o-", label=label)
        axes[1].plot(g["ranks"], g["efficiency"], "o-", label=mode)
        axes[2].plot(g["ranks"], 100 * (g["aggregate_share"] + g["communicate_share"]), "o-", label=mode)
    ranks = sorted(df["ranks"].unique())
    for ax, ylabel in zip(axes, ("seconds per round", "parallel efficiency",
                                 "aggregate + communicate, % of round")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ranks, [str(r) for r in ranks])
        ax.set_xlabel("MPI ranks")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[1].set_ylim(bottom=0)
    axes[2].set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def markdown(df):
    """The table as Markdown (shares in percent)."""
    cols = ["mode", "ranks", "threads", "clients", "rounds", "s/round", "local %", "aggregate %",
            "communicate %", "efficiency"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.sort_values(["mode", "ranks"]).iterrows():
        lines.append(f"| {r['mode']} | {r['ranks']} | {r['threads']} | {r['clients']} | {r['rounds']} | "
                     f"{r['seconds_per_round']:.4f} | {100 * r['local_share']:.1f} | "
                     f"{100 * r['aggregate_share']:.2f} | {100 * r['communicate_share']:.1f} | "
                     f"{r['efficiency']:.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", help="scaling.csv written by jobs/scaling.sbatch")
    ap.add_argument("-o", "--output", required=True, help="PNG (or PDF) to write")
    ap.add_argument("--title", default="pfcr pretrain scaling", help="figure title")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args()
    df = pd.read_csv(args.csv)
    missing = {"mode", "ranks", "seconds_per_round", "efficiency", "aggregate_share",
               "communicate_share"} - set(df.columns)
    if missing:
        ap.error(f"{args.csv}: missing columns {sorted(missing)}")
    plot(df, args.output, args.title)
    if args.markdown:
        print(markdown(df))
    print(f"scaling_plot: {len(df)} runs -> {args.output}")


if __name__ == "__main__":
    main()
