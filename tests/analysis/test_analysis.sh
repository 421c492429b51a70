#!/usr/bin/env bash
# The analysis scripts on fake run directories written here (3 methods x 3 seeds on two
# domains with known numbers, plus privacy runs): results_table.py against hand-computed
# mean ± std, bold best, LaTeX, CSV; plot_curves.py and plot_privacy.py write PNGs; broken and
# missing inputs fail naming the file; run_matrix.sh with a stub mpirun/pfcr; the paper matrix
# and the privacy sweep.
# Needs /usr/bin/python3 with numpy and matplotlib only; no pfcr binary. Usage: test_analysis.sh SRC
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../cli/common.sh"
src=$(realpath "${1:-$(dirname "$0")/../..}")
make_work
check() { local what=$1; shift; if "$@"; then pass "$what"; else failed "$what"; fi; }
has() { grep -qF -- "$2" "$1"; }

# --- fake run directories, in the formats pfcr run writes ------------------------------------
# Scientific recall@10 and Office2014 ndcg@50 are set per seed; every other metric of a domain is
# base + 0.001 * seed (local 0.05, fedavg-table 0.06, pfcr-full 0.07, ...); mean_test is the
# unweighted mean over the two domains, as pfcr writes it.
$py - "$work/runs" <<'EOF'
import json, os, sys
root = sys.argv[1]
METRICS = ["recall@10", "ndcg@10", "recall@50", "ndcg@50"]
DOMAINS = ["Scientific", "Office2014"]
SCI_R10 = {"local": [0.10, 0.11, 0.12], "fedavg-table": [0.10, 0.12, 0.14],
           "pfcr-full": [0.13, 0.14, 0.15]}
OFF_N50 = {"local": [0.30, 0.32, 0.34], "fedavg-table": [0.20, 0.22, 0.24],
           "pfcr-full": [0.25, 0.26, 0.30]}
BASE = {"local": 0.05, "fedavg-table": 0.06, "pfcr-full": 0.07, "pfcr-ldp-rr": 0.04,
        "pfcr-ldp-reference": 0.03, "pfcr-ldp-rr-eps1": 0.045, "pfcr-gauss": 0.02}
FIELDS = {"local": ("local", "table", "none"), "fedavg-table": ("fedavg", "table", "none"),
          "pfcr-full": ("pfcr", "table", "none"), "pfcr-ldp-rr": ("pfcr", "table", "randomized-response"),
          "pfcr-ldp-rr-eps1": ("pfcr", "table", "randomized-response"),
          "pfcr-ldp-reference": ("pfcr", "table", "pfcr-reference"),
          "pfcr-gauss": ("pfcr", "table", "gaussian")}
EPS = {"pfcr-ldp-rr": 0.3, "pfcr-ldp-rr-eps1": 1.0, "pfcr-ldp-reference": 0.3}
POP = {"recall@10": 0.0309, "ndcg@10": 0.0171, "recall@50": 0.95, "ndcg@50": 0.0295}

def write_run(sub, method, seed):
    algo, shared, privacy = FIELDS[method]
    d = os.path.join(root, sub, f"{method}-s{seed}")
    os.makedirs(os.path.join(d, "finetune"))
    os.makedirs(os.path.join(d, "pretrain"))
    doms = {}
    for dom in DOMAINS:
        test = {m: BASE[method] + 0.001 * seed for m in METRICS}
        if dom == "Scientific" and method in SCI_R10:
            test["recall@10"] = SCI_R10[method][seed - 1]
        if dom == "Office2014" and method in OFF_N50:
            test["ndcg@50"] = OFF_N50[method][seed - 1]
        doms[dom] = {"test": test, "popularity_test": dict(POP), "best_epoch": [3],
                     "epochs_run": [4 + seed], "test_rows": 100}
    mean = {m: sum(doms[x]["test"][m] for x in DOMAINS) / len(DOMAINS) for m in METRICS}
    res = {"mode": "full", "from": "" if algo == "local" else "pretrain/ckpt/round_000005.h5",
           "prepared": "runs/scientific-office/prepared.h5", "fingerprint": "ab" * 32,
           "domains": doms, "mean_test": mean, "algorithm": algo, "shared": shared,
           "privacy": privacy, "seed": seed, "pretrain_checkpoint": "",
           "time_s": {"prepare": 0.0, "pretrain": 1.0, "finetune": 2.0}}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(res, f)
    # Fine-tuning: valid recall@10 = base + 0.01 * epoch (+ 0.001 * seed), 4 + seed epochs.
    with open(os.path.join(d, "finetune", "metrics.jsonl"), "w") as f:
        for c, dom in enumerate(DOMAINS):
            for e in range(4 + seed):
                v = {m: BASE[method] + 0.01 * e + 0.001 * seed for m in METRICS}
                f.write(json.dumps({"event": "epoch", "client": c, "domain": dom, "shard": 0,
                                    "epoch": e, "train_loss": 5.0 - 0.1 * e, "valid": v,
                                    "best_epoch": e, "time": {"train": 0.1, "evaluate": 0.01}}) + "\n")
            f.write(json.dumps({"event": "test", "client": c, "domain": dom, "shard": 0,
                                "test": doms[dom]["test"], "popularity": POP, "best_epoch": 3,
                                "epochs_run": 4 + seed}) + "\n")
    eps = EPS.get(method)
    with open(os.path.join(d, "pretrain", "metrics.jsonl"), "w") as f:
        for r in range(5):
            p = {"mechanism": privacy, "epsilon_round": None, "epsilon_total": None,
                 "delta": 0, "valid_ldp": privacy == "randomized-response"}
            if eps is not None:
                p["epsilon_round"], p["epsilon_total"] = eps, eps * (r + 1)
            if privacy == "gaussian":
                p["epsilon_round"], p["epsilon_total"], p["delta"] = 2.0, 2.0 * (r + 1), 1e-5
            f.write(json.dumps({"event": "round", "round": r, "train_loss": [4.0, 4.1],
                                "clients": [0, 1], "aggregate_norm": 1.0,
                                "bytes_up_per_client": 8, "bytes_down_per_client": 8,
                                "privacy": p, "time": {"local_train": 1.0, "aggregate": 0.0,
                                "communicate": 0.0, "server": 0.0, "checkpoint": 0.0}}) + "\n")
        f.write(json.dumps({"event": "end", "rounds": 5}) + "\n")
    mech = {"none": "none"}.get(privacy, privacy)
    with open(os.path.join(d, "config.resolved.yaml"), "w") as f:
        f.write("# pfcr resolved configuration: every key, with where its value came from\n"
                f"seed: {seed}  # --set seed={seed}\n"
                f'output_dir: "{d}"  # --set output_dir={d}\n'
                'valid_metric: "recall@10"  # default\n'
                "topk: [10, 50]  # default\n"
                "federation:\n"
                f'  algorithm: "{algo}"  # configs/paper/x.yaml:2\n'
                f'  shared: "{shared}"  # default\n'
                "privacy:\n"
                f'  mechanism: "{mech}"  # configs/paper/x.yaml:4\n'
                f"  epsilon: {eps if eps is not None else 0.3}  # configs/paper/x.yaml:5\n"
                "  delta: 1e-05  # default\n"
                "finetune:\n"
                '  mode: "full"  # default\n'
                '  from: ""  # default\n')

for method in ("local", "fedavg-table", "pfcr-full"):
    for seed in (1, 2, 3):
        write_run("main", method, seed)
for method in ("pfcr-ldp-rr", "pfcr-ldp-reference", "pfcr-ldp-rr-eps1"):
    for seed in (1, 2, 3):
        write_run("priv", method, seed)
write_run("priv", "pfcr-gauss", 1)
EOF
R=$work/runs

# --- results_table.py --------------------------------------------------------------------------
$py "$src/analysis/results_table.py" "$R"/main/* --md "$work/t.md" --tex "$work/t.tex" \
  --csv "$work/t.csv" >"$work/t.out" 2>"$work/t.err" \
  && pass "results_table: runs" || failed "results_table: $(cat "$work/t.err")"
check "results_table: stdout is the Markdown file" cmp -s "$work/t.out" "$work/t.md"
row() { grep -F "| $1 |" "$work/t.md"; }
# Columns: Method, n, Scientific R@10 N@10 R@50 N@50, Office2014 R@10 N@10 R@50 N@50, Mean x4.
cell() { row "$1" | awk -F' \\| ' -v c="$2" '{print $c}'; }
check "results_table: header and paper row order (local, FedAvg, PFCR, popularity)" \
  bash -c "head -1 '$work/t.md' | grep -q '| Method | n | Scientific R@10 | Scientific N@10 |.*| Office2014 N@50 | Mean R@10 |.*| Mean N@50 |' \
    && grep -o '^| [A-Za-z][^|]*|' '$work/t.md' | tail -4 | tr -d '|' | sed 's/ *$//; s/^ //' | paste -sd, \
       | grep -qx 'Local only,FedAvg (code table),PFCR + full fine-tune,Popularity (train counts)'"
check "results_table: n = 3 seeds per method, 9 runs for popularity" \
  bash -c "[ \"\$(grep -c '^| [LFP][^|]* | 3 |' '$work/t.md')\" = 3 ] && grep -q '^| Popularity (train counts) | 9 |' '$work/t.md'"
expect() { # method, column, expected cell
  local got; got=$(cell "$1" "$2")
  [ "$got" = "$3" ] && pass "cell $1 col $2 = $3" || failed "cell $1 col $2: '$got', expected '$3'"
}
# Scientific R@10 (column 3): local 0.10 0.11 0.12; FedAvg 0.10 0.12 0.14; PFCR 0.13 0.14 0.15 (best).
expect "Local only" 3 "0.1100 ± 0.0100"
expect "FedAvg (code table)" 3 "0.1200 ± 0.0200"
expect "PFCR + full fine-tune" 3 "**0.1400** ± 0.0100"
# Office2014 N@50 (column 10): local 0.30 0.32 0.34 (best); FedAvg 0.20 0.22 0.24;
# PFCR 0.25 0.26 0.30: mean 0.27, std sqrt((0.02² + 0.01² + 0.03²) / 2) = 0.026458.
expect "Local only" 10 "**0.3200** ± 0.0200"
expect "FedAvg (code table)" 10 "0.2200 ± 0.0200"
expect "PFCR + full fine-tune" 10 "0.2700 ± 0.0265"
# Office2014 R@10 (column 7): base + 0.001 seed -> local 0.052, PFCR 0.072 (best), std 0.001.
expect "Local only" 7 "0.0520 ± 0.0010"
expect "PFCR + full fine-tune" 7 "**0.0720** ± 0.0010"
# Mean R@10 (column 11): local (0.10+0.051)/2, (0.11+0.052)/2, (0.12+0.053)/2 = 0.0755 0.081 0.0865.
expect "Local only" 11 "0.0810 ± 0.0055"
expect "PFCR + full fine-tune" 11 "**0.1060** ± 0.0055"
# Popularity is identical in every run; its R@50 (0.95) beats every method but is never bold.
expect "Popularity (train counts)" 3 "0.0309 ± 0.0000"
expect "Popularity (train counts)" 5 "0.9500 ± 0.0000"
check "results_table: one bold cell in each of the 12 columns, none in popularity" \
  bash -c "[ \"\$(grep -o '\*\*' '$work/t.md' | wc -l)\" = 24 ] && ! grep '^| Popularity' '$work/t.md' | grep -qF '**'"
latex_ok() {
  local t=$work/t.tex
  has "$t" '\begin{tabular}{lr' && has "$t" '\end{tabular}' && has "$t" '\toprule' \
    && has "$t" '\midrule' && has "$t" '\bottomrule' && has "$t" '\multicolumn{4}{c}{Scientific}' \
    && has "$t" '\textbf{0.1400} $\pm$ 0.0100' && has "$t" '\textbf{0.3200} $\pm$ 0.0200' \
    && [ "$(grep -o '\\textbf{' "$t" | wc -l)" = 12 ] \
    && awk '/\\\\$/ && !/multicolumn/ { if (gsub(/&/, "&") != 13) bad = 1 } END { exit bad }' "$t"
}
check "results_table: LaTeX booktabs tabular, 14 cells a row, bold best and \$\\pm\$" latex_ok
check "results_table: CSV parses, exact means and sample std, best flags" $py - "$work/t.csv" <<'EOF'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 4 * 12, len(rows)
get = {(r["method"], r["domain"], r["metric"]): r for r in rows}
r = get[("pfcr-full", "Office2014", "ndcg@50")]
assert math.isclose(float(r["mean"]), 0.27) and math.isclose(float(r["std"]), math.sqrt(0.0007)), r
assert r["n"] == "3" and r["seeds"] == "1 2 3" and r["best"] == "0"
assert get[("local", "Office2014", "ndcg@50")]["best"] == "1"
assert get[("pfcr-full", "Mean", "recall@10")]["best"] == "1"
assert math.isclose(float(get[("pfcr-full", "Mean", "recall@10")]["mean"]), 0.106)
assert get[("popularity", "Scientific", "recall@50")]["best"] == "0"
assert sum(int(r["best"]) for r in rows) == 12
EOF

# --results: `pfcr evaluate --json` files (no popularity, no method fields) in 5 of the 9 runs.
$py - "$R/main" <<'EOF'
import json, os, sys
for method, seeds in (("fedavg-table", (1, 2, 3)), ("pfcr-full", (1, 2))):
    for s in seeds:
        t = {"recall@10": 0.01 * s, "ndcg@10": 0.002, "recall@50": 0.03, "ndcg@50": 0.004}
        doc = {"checkpoint": "x/round_000003.h5", "stage": "pretrain", "round": 3, "state": "final",
               "split": "test", "domains": {"Scientific": {"test": t, "rows": 10},
                                            "Office2014": {"test": t, "rows": 5}}, "mean_test": t}
        json.dump(doc, open(os.path.join(sys.argv[1], f"{method}-s{s}", "pretrain-test.json"), "w"))
EOF
$py "$src/analysis/results_table.py" "$R"/main/* --results pretrain-test.json --skip-missing >"$work/ev.md" 2>"$work/ev.err" \
  && [ "$(grep -c 'no pretrain-test.json, skipped' "$work/ev.err")" -eq 4 ] && ! grep -q Popularity "$work/ev.md" \
  && grep -q '^| FedAvg (code table) | 3 | \*\*0.0200\*\* ± 0.0100 |' "$work/ev.md" \
  && grep -q '^| PFCR + full fine-tune | 2 | 0.0150 ± 0.0071 |' "$work/ev.md" \
  && pass "results_table --results: evaluate files, local skipped, no popularity row, mean ± std" \
  || failed "results_table --results: $(cat "$work/ev.err" "$work/ev.md")"

check "method order: the paper's first, then others with numbers in numeric order" $py -c "
import sys; sys.path.insert(0, '$src/analysis'); from pfcr_runs import method_key
names = ['pfcr-ldp-rr-eps30', 'pfcr-ldp-rr-eps3', 'zeta', 'pfcr-ldp-rr-eps10', 'pfcr-full', 'local', 'pfcr-ldp-rr-eps0.3']
got = sorted(names, key=method_key)
assert got == ['local', 'pfcr-full', 'pfcr-ldp-rr-eps0.3', 'pfcr-ldp-rr-eps3', 'pfcr-ldp-rr-eps10',
               'pfcr-ldp-rr-eps30', 'zeta'], got"

# Broken, missing and mislabelled inputs fail and name the file.
cp -r "$R/main/local-s1" "$work/bad-s1"
echo '{"mode": "full", "domains": {' >"$work/bad-s1/results.json"
if $py "$src/analysis/results_table.py" "$R/main/local-s2" "$work/bad-s1" >/dev/null 2>"$work/e1"; then
  failed "broken results.json accepted"
else grep -qF "$work/bad-s1/results.json" "$work/e1" && pass "broken results.json: non-zero exit naming the file" \
  || failed "broken results.json: message '$(cat "$work/e1")'"; fi
$py -c 'import json,sys; r=json.load(open(sys.argv[1])); del r["domains"]["Office2014"]["test"]["ndcg@10"]; json.dump(r, open(sys.argv[1],"w"))' \
  "$(cp -r "$R/main/local-s1" "$work/nokey-s1"; echo "$work/nokey-s1/results.json")"
if $py "$src/analysis/results_table.py" "$work/nokey-s1" >/dev/null 2>"$work/e2"; then failed "missing metric accepted"
else grep -qF "$work/nokey-s1/results.json: domains.Office2014.test.ndcg@10" "$work/e2" \
  && pass "missing metric: names the file and key" || failed "missing metric: '$(cat "$work/e2")'"; fi
mkdir -p "$work/unfinished-s1"
if $py "$src/analysis/results_table.py" "$R/main/local-s1" "$work/unfinished-s1" >/dev/null 2>"$work/e3"; then
  failed "missing results.json accepted"
else grep -qF "$work/unfinished-s1/results.json: not found" "$work/e3" \
  && pass "missing results.json: non-zero exit naming the file" || failed "missing: '$(cat "$work/e3")'"; fi
$py "$src/analysis/results_table.py" --skip-missing "$R/main/local-s1" "$work/unfinished-s1" >/dev/null 2>"$work/e4" \
  && grep -q "unfinished-s1: no results.json, skipped" "$work/e4" && pass "--skip-missing skips unfinished runs" \
  || failed "--skip-missing: $(cat "$work/e4")"
cp -r "$R/main/fedavg-table-s1" "$work/pfcr-full-s9"
if $py "$src/analysis/results_table.py" "$work/pfcr-full-s9" >/dev/null 2>"$work/e5"; then failed "mislabelled run accepted"
else grep -qF "says method 'pfcr-full' but algorithm is 'fedavg'" "$work/e5" && pass "run name must agree with results.json" \
  || failed "mislabelled: '$(cat "$work/e5")'"; fi

# --- plot_curves.py ----------------------------------------------------------------------------
png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
$py "$src/analysis/plot_curves.py" "$R"/main/* --out "$work/curves.png" >"$work/c.out" 2>&1 \
  && png "$work/curves.png" && grep -q "3 methods, 2 domains" "$work/c.out" \
  && pass "plot_curves: PNG written (3 methods, 2 domains)" || failed "plot_curves: $(cat "$work/c.out")"
cp -r "$R/main/local-s1" "$work/badcurve-s1"
echo '{"event": "epoch", "domain": ' >>"$work/badcurve-s1/finetune/metrics.jsonl"
if $py "$src/analysis/plot_curves.py" "$work/badcurve-s1" --out "$work/x.png" >/dev/null 2>"$work/e6"; then
  failed "plot_curves: broken metrics.jsonl accepted"
else grep -qF "$work/badcurve-s1/finetune/metrics.jsonl:13: invalid JSON" "$work/e6" \
  && pass "plot_curves: broken metrics.jsonl names file and line" || failed "plot_curves broken: '$(cat "$work/e6")'"; fi

# --- plot_privacy.py ---------------------------------------------------------------------------
$py "$src/analysis/plot_privacy.py" "$R"/priv/* "$R"/main/* --out "$work/privacy.png" >"$work/p.out" 2>&1 \
  && png "$work/privacy.png" && pass "plot_privacy: PNG written" || failed "plot_privacy: $(cat "$work/p.out")"
# randomized-response at eps 0.3 (config) -> mean_test R@10 0.041..0.043 -> 0.042; at eps 1 0.047;
# the paper's arithmetic 0.032; gaussian at its epsilon_round 2; references pfcr-full 0.106, local 0.081.
for want in "randomized-response  eps 0.3      recall@10 0.0420 (n=3)" \
            "randomized-response  eps 1        recall@10 0.0470 (n=3)" \
            "pfcr-reference       eps 0.3      recall@10 0.0320 (n=3)" \
            "gaussian             eps 2        recall@10 0.0210 (n=1)" \
            "local                no privacy  recall@10 0.0810 (n=3)" \
            "pfcr-full            no privacy  recall@10 0.1060 (n=3)"; do
  has "$work/p.out" "$want" && pass "plot_privacy: $want" || failed "plot_privacy: no '$want' in: $(cat "$work/p.out")"
done
! grep -q "^fedavg-table" "$work/p.out" && pass "plot_privacy: default references are pfcr-full and local" \
  || failed "plot_privacy: fedavg-table drawn as a reference"
$py "$src/analysis/plot_privacy.py" "$R"/priv/pfcr-ldp-rr-* --epsilon total --out "$work/privacy2.png" >"$work/p2.out" 2>&1 \
  && grep -qF "eps 1.5      recall@10 0.0420" "$work/p2.out" && grep -qF "eps 5        recall@10 0.0470" "$work/p2.out" \
  && pass "plot_privacy --epsilon total: epsilon_total of the last round" || failed "plot_privacy total: $(cat "$work/p2.out")"
if $py "$src/analysis/plot_privacy.py" "$R"/main/* --out "$work/x.png" >/dev/null 2>"$work/e7"; then
  failed "plot_privacy without private runs accepted"
else grep -q "no run with a privacy mechanism" "$work/e7" && pass "plot_privacy: no private run is an error" \
  || failed "plot_privacy none: $(cat "$work/e7")"; fi

# --- plot_simtime.py: fake pre-training metrics on the virtual clock ---------------------------
# "sync" (seeds 1, 2): valid R@10 0.1 0.3 0.5 at 100 200 300 s and 0.2 0.4 0.6 at 100 200 400 s;
# "fast" (seed 1): 0.3 0.6 at 10 20 s, 2 of 3 clients aggregated, one deadline drop a round
# (2 per run, 360 wasted client-s each: 0.2 client-hours).
# Default target 0.95 x mean final sync (0.55) = 0.5225: sync reaches it at 400 s (seed 2 only),
# fast at 20 s. Final: sync 0.55 ± 0.070711, fast 0.6.
"$py" - "$work/sim" <<'PY'
import json, os, sys
root = sys.argv[1]
def run(name, valid, clients, dropped):
    os.makedirs(f"{root}/{name}")
    with open(f"{root}/{name}/metrics.jsonl", "w") as f:
        for i, (t, v) in enumerate(valid):
            f.write(json.dumps({"event": "round", "round": i, "train_loss": [1, 1, 1],
                                "clients": clients, "sim_time_s": t,
                                "dropped": {"deadline": dropped, "unavailable": 0,
                                            "overcommit": 0, "stale": 0},
                                "wasted_client_s": 360.0 * dropped}) + "\n")
            f.write(json.dumps({"event": "valid", "round": i, "sim_time_s": t,
                                "recall@10": v}) + "\n")
run("sync-s1", [(100, 0.1), (200, 0.3), (300, 0.5)], [0, 1, 2], 0)
run("sync-s2", [(100, 0.2), (200, 0.4), (400, 0.6)], [0, 1, 2], 0)
run("fast-s1", [(10, 0.3), (20, 0.6)], [0, 2], 1)
PY
$py "$src/analysis/plot_simtime.py" "$work"/sim/* --out "$work/sim.png" --table "$work/sim.md" >"$work/s.out" 2>&1 \
  && png "$work/sim.png" && pass "plot_simtime: PNG written" || failed "plot_simtime: $(cat "$work/s.out")"
for want in "| sync | 2 | 0.55 ± 0.071 | 5.833 ± 1.2 | 6.667 ± 0 (1/2) | 9 ± 0 | — | 0 ± 0 | 0 ± 0 |" \
            "| fast | 1 | 0.6 ± 0 | 0.3333 ± 0 | 0.3333 ± 0 | 4 ± 0 | deadline 2 | 0.2 ± 0 | 1 ± 0 |" \
            "time to recall@10 ≥ 0.5225 (minutes)"; do
  has "$work/sim.md" "$want" && pass "plot_simtime: $want" || failed "plot_simtime: no '$want' in: $(cat "$work/s.out")"
done
if $py "$src/analysis/plot_simtime.py" "$work"/sim/fast-s1 --out "$work/x.png" >/dev/null 2>"$work/e8"; then
  failed "plot_simtime without a baseline or --target accepted"
else grep -q "no --target and no 'sync' runs" "$work/e8" && pass "plot_simtime: missing baseline is an error" \
  || failed "plot_simtime baseline: $(cat "$work/e8")"; fi

# --- domain_gain.py: Scientific R@10 local [0.10, 0.11, 0.12] vs pfcr-full [0.13, 0.14, 0.15]
$py "$src/analysis/domain_gain.py" "$R"/main/* --baseline local --method pfcr-full --md "$work/g.md" \
  >"$work/g.out" 2>"$work/g.err" && pass "domain_gain: runs" || failed "domain_gain: $(cat "$work/g.err")"
check "domain_gain: Scientific 0.1100 ± 0.0100 vs 0.1400 ± 0.0100, paired +0.0300 ± 0.0000, 3/3 seeds" \
  grep -qF "| Scientific | 100 | 0.1100 ± 0.0100 | 0.1400 ± 0.0100 | +0.0300 ± 0.0000 | 3/3 seeds |" "$work/g.md"
check "domain_gain: a mean-over-domains row" grep -q "mean over domains" "$work/g.md"
if $py "$src/analysis/domain_gain.py" "$R"/main/* --baseline local --method nosuch >/dev/null 2>"$work/g2.err"; then
  failed "domain_gain: unknown method accepted"
else
  check "domain_gain: unknown method is an error naming it" grep -q "nosuch" "$work/g2.err"
fi

# --- run_matrix.sh with a stub mpirun and pfcr -------------------------------------------------
cat >"$work/mpirun" <<'EOF'
#!/usr/bin/env bash
# stub: mpirun -n R PFCR args... -> PFCR args...
shift 2
exec "$@"
EOF
cat >"$work/pfcr" <<'EOF'
#!/usr/bin/env bash
# stub pfcr: records its arguments, writes results.json into output_dir; run names containing
# "fail" exit 1.
out=""
for a in "$@"; do case $a in output_dir=*) out=${a#output_dir=} ;; esac; done
mkdir -p "$out"
echo "$*" >>"$(dirname "$0")/calls.txt"
case $out in *fail*) echo "error: stub failure" >&2; exit 1 ;; esac
echo '{"mean_test": {"recall@10": 0.1}}' >"$out/results.json"
EOF
chmod +x "$work/mpirun" "$work/pfcr"
printf '%s\n' "# a comment" "" "a-s1 -c x.yaml --set seed=1" "a-s2 -c x.yaml --set seed=2" \
  "b-s1 -c y.yaml --set seed=1" "fail-s1 -c z.yaml" >"$work/matrix.txt"
mkdir -p "$work/mruns/a-s2" && echo '{}' >"$work/mruns/a-s2/results.json"
MPIRUN=$work/mpirun PFCR=$work/pfcr RANKS=2 THREADS=1 bash "$src/analysis/run_matrix.sh" \
  "$work/matrix.txt" "$work/mruns" '^(a|fail)-' >"$work/m.out" 2>&1 && mstatus=0 || mstatus=$?
[ "$mstatus" = 1 ] && [ -f "$work/mruns/a-s1/results.json" ] && [ ! -e "$work/mruns/b-s1" ] \
  && [ "$(wc -l <"$work/calls.txt")" = 2 ] \
  && grep -qx "run -c x.yaml --set seed=1 -t 1 --set output_dir=$work/mruns/a-s1" "$work/calls.txt" \
  && grep -q "a-s2: results.json exists, skipped" "$work/m.out" && grep -q "fail-s1: FAILED (exit 1)" "$work/m.out" \
  && grep -q "stub failure" "$work/m.out" && grep -q "1 run, 1 skipped, 1 failed" "$work/m.out" \
  && pass "run_matrix: regex subset, skips finished runs, reports failures, exit 1" \
  || failed "run_matrix (status $mstatus): $(cat "$work/m.out"; cat "$work/calls.txt")"

# --- the paper matrix --------------------------------------------------------------------------
check "configs/paper/matrix.txt: 11 methods x seeds 1 2 3, every config file exists" bash -c "
  cd '$src' && [ \"\$(wc -l <configs/paper/matrix.txt)\" = 33 ] \
  && [ \"\$(cut -d' ' -f1 configs/paper/matrix.txt | sort -u | wc -l)\" = 33 ] \
  && while read -r name rest; do
       m=\${name%-s[123]}; s=\${name##*-s}
       [ \"\$rest\" = \"-c configs/scientific-office.yaml -c configs/paper/base.yaml -c configs/paper/\$m.yaml --set seed=\$s\" ] \
         && [ -f configs/paper/\$m.yaml ] || { echo \"bad line: \$name \$rest\"; exit 1; }
     done <configs/paper/matrix.txt"

check "configs/paper/privacy-sweep.txt: 2 LDP methods x 4 epsilons x seeds 1 2 3, eps as named" bash -c "
  cd '$src' && lines=\$(grep -vE '^\\s*(#|\$)' configs/paper/privacy-sweep.txt) \
  && [ \"\$(wc -l <<<\"\$lines\")\" = 24 ] && [ \"\$(cut -d' ' -f1 <<<\"\$lines\" | sort -u | wc -l)\" = 24 ] \
  && while read -r name rest; do
       [[ \$name =~ ^(pfcr-ldp-(rr|reference))-eps([0-9.]+)-s([123])\$ ]] || { echo \"bad name: \$name\"; exit 1; }
       m=\${BASH_REMATCH[1]} e=\${BASH_REMATCH[3]} s=\${BASH_REMATCH[4]}
       [ \"\$rest\" = \"-c configs/scientific-office.yaml -c configs/paper/base.yaml -c configs/paper/\$m.yaml --set privacy.epsilon=\$e --set seed=\$s\" ] \
         && [ -f configs/paper/\$m.yaml ] || { echo \"bad line: \$name \$rest\"; exit 1; }
     done <<<\"\$lines\""

check "configs/paper/server-lr.txt: PFCR + full at server_lr 1 and 0.1 x seeds 1 2 3, lr as named" bash -c "
  cd '$src' && lines=\$(grep -vE '^\\s*(#|\$)' configs/paper/server-lr.txt) \
  && [ \"\$(wc -l <<<\"\$lines\")\" = 6 ] && [ \"\$(cut -d' ' -f1 <<<\"\$lines\" | sort -u | wc -l)\" = 6 ] \
  && while read -r name rest; do
       [[ \$name =~ ^pfcr-full-slr(1|01)-s([123])\$ ]] || { echo \"bad name: \$name\"; exit 1; }
       lr=\${BASH_REMATCH[1]/01/0.1} s=\${BASH_REMATCH[2]}
       [ \"\$rest\" = \"-c configs/scientific-office.yaml -c configs/paper/base.yaml -c configs/paper/pfcr-full.yaml --set federation.server_lr=\$lr --set seed=\$s\" ] \
         || { echo \"bad line: \$name \$rest\"; exit 1; }
     done <<<\"\$lines\""

finish analysis
