#!/usr/bin/python3
"""The paper-shaped results table from pfcr run directories: one row per method, mean ± sample
std (ddof=1) over its seeds of the test metrics, columns = each domain × {R@10, N@10, R@50, N@50}
+ the mean over domains (results.json `mean_test`), best mean per column in bold, and a
popularity row (results.json `popularity_test`, over every run given). Writes Markdown, LaTeX
(booktabs; a bare tabular to \\input) and CSV (long format); prints the Markdown.

Method of a run = its directory name without the `-s<seed>` suffix (configs/paper/matrix.txt
names); rows follow the paper's order (docs/METHOD.md §10), other methods after it, alphabetically.
It does not run anything, and reads nothing but results.json (or, with --results NAME, the
file NAME of each run directory in the same shape, e.g. the JSON of `pfcr evaluate --json`; the
popularity row is left out when no run has popularity_test).

Usage: analysis/results_table.py runs/paper/* [--md t.md] [--tex t.tex] [--csv t.csv]
       analysis/results_table.py runs/paper/* --results pretrain-test.json --skip-missing
"""
import argparse
import csv
import io
import os
import sys

import numpy as np

from pfcr_runs import METRICS, RunError, label_of, load_results, method_key

MEAN = "Mean"  # the column group of results.json mean_test (unweighted mean over domains)


def collect(run_dirs, skip_missing=False, name="results.json"):
    """Load every run; returns (runs, skipped dirs). Errors name the file."""
    runs, skipped = [], []
    for d in run_dirs:
        if not os.path.isdir(d):
            raise RunError(f"{d}: not a directory")
        if skip_missing and not os.path.exists(os.path.join(d, name)):
            skipped.append(d)
            continue
        runs.append(load_results(d, name))
    if not runs:
        raise RunError(f"no run with a {name} among: " + " ".join(run_dirs))
    return runs, skipped


def domains_of(runs):
    """Domains in first-seen order over all runs."""
    seen = []
    for r in runs:
        for d in r["domains"]:
            if d not in seen:
                seen.append(d)
    return seen


def stats(values):
    """(mean, sample std or None for n < 2, n) of a list of numbers."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return None
    std = float(np.std(a, ddof=1)) if a.size > 1 else None
    return float(np.mean(a)), std, int(a.size)


def run_values(r, group, part):
    """The four metrics of one run for a column group (a domain or MEAN); None if absent."""
    if group == MEAN:
        if part == "test":
            return r["mean_test"]
        pops = [v.get("popularity_test") for v in r["domains"].values()]
        if any(p is None for p in pops):
            return None
        return {m: float(np.mean([p[m] for p in pops])) for m, _ in METRICS}
    v = r["domains"].get(group)
    return None if v is None else v.get(part)


def build_table(runs):
    """Rows (method, label, seeds, {(group, metric): (mean, std, n)}) in paper order, the
    popularity row, the column groups, and the best mean per column."""
    groups = domains_of(runs) + [MEAN]
    by_method = {}
    for r in runs:
        by_method.setdefault(r["_method"], []).append(r)
    rows = []
    for method in sorted(by_method, key=method_key):
        rs = by_method[method]
        seeds = [r["_seed"] for r in rs]
        dup = sorted({s for s in seeds if s is not None and seeds.count(s) > 1})
        if dup:
            print(f"warning: method {method}: seed(s) {dup} appear more than once", file=sys.stderr)
        cells = {}
        for g in groups:
            vals = [run_values(r, g, "test") for r in rs]
            vals = [v for v in vals if v is not None]
            for m, _ in METRICS:
                cells[(g, m)] = stats([v[m] for v in vals])
        rows.append((method, label_of(method), seeds, cells))
    pop = {}
    for g in groups:
        vals = [v for v in (run_values(r, g, "popularity_test") for r in runs) if v is not None]
        for m, _ in METRICS:
            pop[(g, m)] = stats([v[m] for v in vals])
    popularity = ("popularity", "Popularity (train counts)", [r["_seed"] for r in runs], pop)
    if all(c is None for c in pop.values()):
        popularity = None  # no run has popularity_test (e.g. `pfcr evaluate` files)
    best = {}
    for g in groups:
        for m, _ in METRICS:
            means = [c[(g, m)][0] for _, _, _, c in rows if c[(g, m)] is not None]
            best[(g, m)] = max(means) if means else None
    return rows, popularity, groups, best


def fmt_cell(cell, digits, bold, pm):
    """'mean ± std' with the mean wrapped by bold(); '–' when absent."""
    if cell is None:
        return "–"
    mean, std, _ = cell
    text = bold(f"{mean:.{digits}f}")
    return text if std is None else f"{text}{pm}{std:.{digits}f}"


def is_best(cell, best):
    return cell is not None and best is not None and cell[0] == best


def markdown(rows, popularity, groups, best, digits):
    head = ["Method", "n"] + [f"{g} {short}" for g in groups for _, short in METRICS]
    out = ["| " + " | ".join(head) + " |", "|---|--:|" + "--:|" * (len(head) - 2)]
    for method, label, seeds, cells in rows + ([popularity] if popularity else []):
        line = [label, str(len(seeds))]
        for g in groups:
            for m, _ in METRICS:
                c = cells[(g, m)]
                b = (lambda s: f"**{s}**") if method != "popularity" and is_best(c, best[(g, m)]) \
                    else (lambda s: s)
                line.append(fmt_cell(c, digits, b, " ± "))
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out) + "\n"


def tex_escape(s):
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}"}
    return "".join(repl.get(ch, ch) for ch in s)


def latex(rows, popularity, groups, best, digits):
    ncol = 2 + 4 * len(groups)
    out = ["% pfcr results table (analysis/results_table.py); needs \\usepackage{booktabs}",
           "\\begin{tabular}{lr" + "c" * (ncol - 2) + "}", "\\toprule"]
    out.append(" & & " + " & ".join(f"\\multicolumn{{4}}{{c}}{{{tex_escape(g)}}}"
                                    for g in groups) + " \\\\")
    out.append(" ".join(f"\\cmidrule(lr){{{3 + 4 * i}-{6 + 4 * i}}}" for i in range(len(groups))))
    out.append("Method & $n$ & " + " & ".join(short for _ in groups for _, short in METRICS)
               + " \\\\")
    out.append("\\midrule")
    for method, label, seeds, cells in rows + ([popularity] if popularity else []):
        if method == "popularity":
            out.append("\\midrule")
        line = [tex_escape(label), str(len(seeds))]
        for g in groups:
            for m, _ in METRICS:
                c = cells[(g, m)]
                b = (lambda s: f"\\textbf{{{s}}}") \
                    if method != "popularity" and is_best(c, best[(g, m)]) else (lambda s: s)
                line.append(fmt_cell(c, digits, b, " $\\pm$ "))
        out.append(" & ".join(line) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out) + "\n"


def csv_text(rows, popularity, groups, best):
    """Long format: one line per method × column; std empty for n = 1."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "label", "n", "seeds", "domain", "metric", "mean", "std", "best"])
    for method, label, seeds, cells in rows + ([popularity] if popularity else []):
        for g in groups:
            for m, _ in METRICS:
                c = cells[(g, m)]
                if c is None:
                    continue
                mean, std, n = c
                w.writerow([method, label, n, " ".join(str(s) for s in seeds), g, m, repr(mean),
                            "" if std is None else repr(std),
                            int(method != "popularity" and is_best(c, best[(g, m)]))])
    return buf.getvalue()


def write(path, text):
    if path:
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="pfcr run output directories")
    ap.add_argument("--md", help="write the Markdown table here")
    ap.add_argument("--tex", help="write the LaTeX (booktabs) tabular here")
    ap.add_argument("--csv", help="write the long-format CSV here")
    ap.add_argument("--digits", type=int, default=4, help="decimals shown (default 4)")
    ap.add_argument("--skip-missing", action="store_true",
                    help="skip run directories without the results file (unfinished runs) "
                         "with a warning instead of failing; a broken one still fails")
    ap.add_argument("--results", default="results.json", metavar="NAME",
                    help="the JSON file read in every run directory (default results.json; "
                         "e.g. a `pfcr evaluate --json` file such as pretrain-test.json)")
    args = ap.parse_args()
    try:
        runs, skipped = collect(args.runs, args.skip_missing, args.results)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for d in skipped:
        print(f"warning: {d}: no {args.results}, skipped", file=sys.stderr)
    rows, popularity, groups, best = build_table(runs)
    md = markdown(rows, popularity, groups, best, args.digits)
    write(args.md, md)
    write(args.tex, latex(rows, popularity, groups, best, args.digits))
    write(args.csv, csv_text(rows, popularity, groups, best))
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
