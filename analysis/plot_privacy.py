#!/usr/bin/python3
"""Utility vs privacy from pfcr run directories: test mean Recall@10 (results.json `mean_test`,
or --metric) against ε for the runs with a privacy mechanism, one line per mechanism, mean ±
sample std over seeds at each ε; runs without privacy (results.json privacy "none") whose
method matches --reference are horizontal reference lines (mean over seeds, band = ± std).

ε (--epsilon): `round` (default) = the per-coordinate, per-round ε of config.resolved.yaml
`privacy.epsilon` for pfcr-reference and randomized-response, and the last pre-training round's
`epsilon_round` of pretrain/metrics.jsonl for gaussian; `total` = that round's `epsilon_total`
(the privacy spent over all rounds). pfcr-reference is plotted at its nominal ε although it is
not a valid LDP mechanism (docs/METHOD.md §7). Method = run directory name without `-s<seed>`.

Usage: analysis/plot_privacy.py runs/paper/* --out privacy.png [--epsilon total]
"""
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pfcr_runs import (METRICS, ORDER, RunError, color_of, config_get,  # noqa: E402
                       label_of, load_results, method_key, read_jsonl, read_resolved_config)
from plotting import run_plot_parser, save_figure  # noqa: E402


def last_round_privacy(run_dir):
    """The `privacy` record of the last "round" event of pretrain/metrics.jsonl."""
    path = os.path.join(run_dir, "pretrain", "metrics.jsonl")
    rounds = [r for r in read_jsonl(path) if r.get("event") == "round"]
    if not rounds or not isinstance(rounds[-1].get("privacy"), dict):
        raise RunError(f"{path}: no round event with a privacy record")
    return rounds[-1]["privacy"], path


def epsilon_of(run_dir, mechanism, source):
    """ε of a private run (see the module docstring); errors name the file."""
    if source == "round" and mechanism in ("pfcr-reference", "randomized-response"):
        path = os.path.join(run_dir, "config.resolved.yaml")
        eps = config_get(read_resolved_config(path), "privacy.epsilon")
        if not isinstance(eps, (int, float)):
            raise RunError(f"{path}: privacy.epsilon is {eps!r}, not a number")
        return float(eps)
    priv, path = last_round_privacy(run_dir)
    key = "epsilon_round" if source == "round" else "epsilon_total"
    eps = priv.get(key)
    if not isinstance(eps, (int, float)):
        raise RunError(f"{path}: last round's privacy.{key} is {eps!r}, not a number")
    return float(eps)


def collect(run_dirs, metric, source, reference, skip_missing=False):
    """({mechanism: {eps: [values]}}, {method: [values]}) from the runs."""
    private, public = {}, {}
    for d in run_dirs:
        if skip_missing and not os.path.exists(os.path.join(d, "results.json")):
            print(f"warning: {d}: no results.json, skipped", file=sys.stderr)
            continue
        r = load_results(d)
        value = r["mean_test"][metric]
        mechanism = r.get("privacy", "none")
        if mechanism in (None, "none"):
            if re.fullmatch(reference, r["_method"]):
                public.setdefault(r["_method"], []).append(value)
        else:
            eps = epsilon_of(d, mechanism, source)
            private.setdefault(mechanism, {}).setdefault(eps, []).append(value)
    if not private:
        raise RunError("no run with a privacy mechanism among: " + " ".join(run_dirs))
    return private, public


MECHANISM_LABELS = {"pfcr-reference": "PFCR's arithmetic (not valid LDP)",
                    "randomized-response": "randomized response (ε-LDP)",
                    "gaussian": "Gaussian (clip + noise)"}


def plot(private, public, metric, source, out, title=None):
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    all_eps = sorted({e for by_eps in private.values() for e in by_eps})
    mech_colors = {"pfcr-reference": color_of("pfcr-ldp-reference", []),
                   "randomized-response": color_of("pfcr-ldp-rr", []), "gaussian": "tab:gray"}
    for mechanism in sorted(private):
        by_eps = private[mechanism]
        eps = sorted(by_eps)
        mean = [np.mean(by_eps[e]) for e in eps]
        err = [np.std(by_eps[e], ddof=1) if len(by_eps[e]) > 1 else 0.0 for e in eps]
        n = sorted({len(by_eps[e]) for e in eps})
        ax.errorbar(eps, mean, yerr=err, marker="o", capsize=3, color=mech_colors.get(mechanism),
                    label=f"{MECHANISM_LABELS.get(mechanism, mechanism)} (n={'/'.join(map(str, n))})")
    others = sorted(m for m in public if m not in ORDER)
    for method in sorted(public, key=method_key):
        color = color_of(method, others)
        v = public[method]
        mean = float(np.mean(v))
        ax.axhline(mean, color=color, ls="--", lw=1.2,
                   label=f"{label_of(method)}, no privacy (n={len(v)})")
        if len(v) > 1:
            sd = float(np.std(v, ddof=1))
            ax.axhspan(mean - sd, mean + sd, color=color, alpha=0.12, lw=0)
    if len(all_eps) > 1 and all_eps[0] > 0 and all_eps[-1] / all_eps[0] >= 10:
        ax.set_xscale("log")
    ax.set_xlabel("ε per coordinate and round" if source == "round" else "ε spent (total)")
    ax.set_ylabel(f"test {dict(METRICS).get(metric, metric)}, mean over domains")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, out)


def main():
    ap = run_plot_parser(__doc__.splitlines()[0],
                         "test metric, mean over domains (default recall@10)",
                         "skip run directories without results.json")
    ap.add_argument("--epsilon", choices=["round", "total"], default="round",
                    help="x axis: per-round ε (default) or total ε spent")
    ap.add_argument("--reference", default="pfcr-full|local", metavar="REGEX",
                    help="non-private methods drawn as reference lines (full match on the "
                         "method name; default 'pfcr-full|local'; '.*' = all)")
    args = ap.parse_args()
    try:
        private, public = collect(args.runs, args.metric, args.epsilon, args.reference,
                                  args.skip_missing)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    plot(private, public, args.metric, args.epsilon, args.out, args.title)
    for mechanism, by_eps in sorted(private.items()):
        for eps, v in sorted(by_eps.items()):
            print(f"{mechanism:<20} eps {eps:<8g} {args.metric} {np.mean(v):.4f} (n={len(v)})")
    for method, v in sorted(public.items(), key=lambda kv: method_key(kv[0])):
        print(f"{method:<20} no privacy  {args.metric} {np.mean(v):.4f} (n={len(v)})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
