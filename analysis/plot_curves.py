#!/usr/bin/python3
"""Fine-tuning curves from pfcr run directories: the validation metric (default recall@10) per
epoch, one panel per domain, one line per method = mean over its seeds, from each run's
finetune/metrics.jsonl ("epoch" events). A domain split into user shards is the unweighted
mean of its shard clients at that epoch. Runs stop early at different epochs, so a point is the
mean over the seeds that reached that epoch (the band spans their min..max).

Method of a run = its directory name without the `-s<seed>` suffix (see pfcr_runs.py).
It reads nothing but finetune/metrics.jsonl and never looks at test metrics.

Usage: analysis/plot_curves.py runs/paper/* --out curves.png [--metric ndcg@10]
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pfcr_runs import (METRICS, ORDER, RunError, color_of, label_of, method_key,  # noqa: E402
                       method_of, read_jsonl)
from plotting import run_plot_parser, save_figure  # noqa: E402


def run_curves(run_dir, metric):
    """{domain: {epoch: value}} of one run (shard clients averaged)."""
    path = os.path.join(run_dir, "finetune", "metrics.jsonl")
    per = {}
    for n, row in enumerate(read_jsonl(path), 1):
        if row.get("event") != "epoch":
            continue
        try:
            value = float(row["valid"][metric])
            key = (row["domain"], int(row["epoch"]))
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{path}: epoch event #{n} lacks domain, epoch or valid.{metric}") \
                from None
        per.setdefault(key, []).append(value)
    if not per:
        raise RunError(f"{path}: no epoch events")
    curves = {}
    for (domain, epoch), values in per.items():
        curves.setdefault(domain, {})[epoch] = float(np.mean(values))
    return curves


def collect(run_dirs, metric, skip_missing=False):
    """{method: [curves of each seed]} and the domains in first-seen order."""
    by_method, domains = {}, []
    for d in run_dirs:
        if skip_missing and not os.path.exists(os.path.join(d, "finetune", "metrics.jsonl")):
            print(f"warning: {d}: no finetune/metrics.jsonl, skipped", file=sys.stderr)
            continue
        curves = run_curves(d, metric)
        by_method.setdefault(method_of(d)[0], []).append(curves)
        for dom in curves:
            if dom not in domains:
                domains.append(dom)
    if not by_method:
        raise RunError("no run with a finetune/metrics.jsonl among: " + " ".join(run_dirs))
    return by_method, domains


# Line style and marker cycle on top of the method colour: methods whose curves nearly coincide
# (e.g. PFCR + full and its pfcr-reference variant) stay distinguishable.
LINE_STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "x"]


def plot(by_method, domains, metric, out, title=None):
    fig, axes = plt.subplots(1, len(domains), figsize=(5.2 * len(domains), 4.2), squeeze=False)
    methods = sorted(by_method, key=method_key)
    others = [m for m in methods if m not in ORDER]
    for ax, dom in zip(axes[0], domains):
        for i, method in enumerate(methods):
            color = color_of(method, others)
            seeds = [c[dom] for c in by_method[method] if dom in c]
            if not seeds:
                continue
            epochs = sorted({e for s in seeds for e in s})
            vals = [[s[e] for s in seeds if e in s] for e in epochs]
            mean = [np.mean(v) for v in vals]
            ax.plot(epochs, mean, color=color, lw=1.4, ls=LINE_STYLES[i % len(LINE_STYLES)],
                    marker=MARKERS[i % len(MARKERS)], ms=3.5,
                    label=f"{label_of(method)} (n={len(seeds)})")
            if len(seeds) > 1:
                ax.fill_between(epochs, [min(v) for v in vals], [max(v) for v in vals],
                                color=color, alpha=0.15, lw=0)
        ax.set_title(dom)
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel(f"valid {dict(METRICS).get(metric, metric)}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(len(labels), 1)),
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(labels) - 1) // 4), 1, 1))
    save_figure(fig, out)


def main():
    ap = run_plot_parser(__doc__.splitlines()[0], "validation metric (default recall@10)",
                         "skip run directories without finetune/metrics.jsonl")
    args = ap.parse_args()
    try:
        by_method, domains = collect(args.runs, args.metric, args.skip_missing)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    plot(by_method, domains, args.metric, args.out, args.title)
    print(f"wrote {args.out}: {len(by_method)} methods, {len(domains)} domains")
    return 0


if __name__ == "__main__":
    sys.exit(main())
