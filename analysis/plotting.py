"""Matplotlib helpers shared by the plotting scripts (plot_curves.py, plot_privacy.py,
scaling_plot.py): the command line of a plot over run directories, and saving a figure.
Needs matplotlib; the caller selects the backend (Agg) before importing this module."""
import argparse
import os

import matplotlib.pyplot as plt

from pfcr_runs import METRICS


def run_plot_parser(description, metric_help, skip_missing_help):
    """The options every plot of run directories takes: RUN_DIR..., --out, --metric (one of
    METRICS, default recall@10), --title, --skip-missing. The caller adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="pfcr run output directories")
    ap.add_argument("--out", required=True, help="PNG (or PDF) to write")
    ap.add_argument("--metric", default="recall@10", choices=[m for m, _ in METRICS],
                    help=metric_help)
    ap.add_argument("--title", help="figure title")
    ap.add_argument("--skip-missing", action="store_true", help=skip_missing_help)
    return ap


def save_figure(fig, out, dpi=130):
    """Writes fig to out (PNG or PDF by its suffix), creating out's folder, and closes fig."""
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
