#!/usr/bin/env bash
# The heterogeneity study of docs/RESULTS.md: synchronous rounds vs deadline + over-commitment
# vs FedBuff on the same heterogeneous devices (configs/hetero-{sync,deadline,async}.yaml), on
# the tiny synthetic data (configs/tiny.yaml, pfcr synth) cut into 16 user shards per domain
# (64 clients), seeds 1-3, pre-training only, validation every 16 client updates; then the
# plot and table of analysis/plot_simtime.py.
#   sync      40 rounds of 16 clients (client_fraction 0.25), waits for the slowest
#   deadline  40 rounds asking 21 (over-commit 0.3), the first 16 within 2 s (the tiny data's
#             rounds are ~10x shorter than the bundled pair's, hence not hetero-deadline's 20 s)
#   async     160 server steps of 4 updates (concurrency 16), staleness weight 1/sqrt(1+s)
#   sync-small  160 plain sync rounds of 4 clients (client_fraction 1/16): as many server
#             steps of as many updates as async, without the asynchrony (separates the two)
# so each aggregates up to 640 client updates. Each run takes seconds.
# DATA=bundled runs the same modes on the bundled Scientific + Office2014 pair at the paper's
# model (configs/scientific-office.yaml), 32 user shards per domain (64 clients of ~1,100
# train rows), 20 rounds / 80 server steps (320 client updates), the configs' own deadline
# (20 s); it needs runs/scientific-office/prepared.h5 (pfcr prepare) and takes minutes a run.
# Usage: analysis/hetero_study.sh [RUNS_ROOT (runs/hetero)] [RANKS (2)]
# Environment: PFCR (build/release/bin/pfcr), MPIRUN (mpirun), SEEDS ("1 2 3"), THREADS (1),
#   DATA (synth | bundled), MODES ("sync deadline async sync-small").
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/hetero}
ranks=${2:-2}
PFCR=${PFCR:-build/release/bin/pfcr}
MPIRUN=${MPIRUN:-mpirun}
SEEDS=${SEEDS:-1 2 3}
THREADS=${THREADS:-1}
DATA=${DATA:-synth}
MODES=${MODES:-sync deadline async sync-small}
[ -x "$PFCR" ] || { echo "hetero_study: $PFCR not found; build first" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mkdir -p "$root/logs"
if [ "$DATA" = bundled ]; then
  [ -f runs/scientific-office/prepared.h5 ] || {
    echo "hetero_study: runs/scientific-office/prepared.h5 missing (pfcr prepare -c configs/scientific-office.yaml)" >&2
    exit 2
  }
  data=(-c configs/scientific-office.yaml --set data.prepared=runs/scientific-office/prepared.h5
        --set data.shards_per_domain=32)
  rounds=20
else
  if [ ! -f "$root/prep/prepared.h5" ]; then
    "$PFCR" synth -q -c configs/tiny.yaml --set synth.output="$root/syn"
    "$PFCR" prepare -q -c configs/tiny.yaml -c "$root/syn/synth.yaml" --set output_dir="$root/prep"
  fi
  data=(-c configs/tiny.yaml -c "$root/syn/synth.yaml" --set data.prepared="$root/prep/prepared.h5"
        --set data.shards_per_domain=16)
  rounds=40
fi
for mode in $MODES; do
  extra=(--set federation.rounds=$rounds)
  config=configs/hetero-$mode.yaml
  [ "$mode" = deadline ] && [ "$DATA" != bundled ] && extra+=(--set federation.deadline_s=2)
  [ "$mode" = async ] && extra=(--set federation.rounds=$((4 * rounds)))
  [ "$mode" = sync-small ] && config=configs/hetero-sync.yaml \
    && extra=(--set federation.rounds=$((4 * rounds)) --set federation.client_fraction=0.0625)
  for seed in $SEEDS; do
    out="$root/$mode-s$seed"
    rm -rf "$out"
    start=$SECONDS
    "$MPIRUN" -n "$ranks" --oversubscribe "$PFCR" pretrain -t "$THREADS" "${data[@]}" -c "$config" \
      --set checkpoint.every=0 --set seed="$seed" "${extra[@]}" --set output_dir="$out" \
      >"$root/logs/$mode-s$seed.log" 2>&1 \
      || { echo "hetero_study: $mode seed $seed failed, see $root/logs/$mode-s$seed.log" >&2; exit 1; }
    echo "hetero_study: $mode seed $seed done in $((SECONDS - start)) s"
  done
done
runs=()
for mode in $MODES; do runs+=("$root/$mode"-s[0-9]*); done
/usr/bin/python3 analysis/plot_simtime.py "${runs[@]}" --out "$root/simtime.png" --table "$root/simtime.md" \
  --title "64 clients ($DATA), heterogeneous devices: validation Recall@10"
