#!/usr/bin/env bash
# Determinism contract of `pfcr pretrain` through the real binary under mpirun: the same
# config gives byte-identical metrics.jsonl (losses and whole-state checksum at round-trip
# precision; only the "time" fields may differ) with 1, 2 and 4 ranks and with 1 or 2 threads,
# for every algorithm; more ranks than clients is a clear error. Usage: test_pretrain_ranks.sh PFCR_BINARY SOURCE_DIR [MPIEXEC]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mpi_test_setup "$@"

"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" >/dev/null
"$pfcr" prepare -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/prep" >/dev/null
common=(-q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set data.prepared="$work/prep/prepared.h5"
        --set federation.rounds=2)
common+=(--set federation.client_fraction=0.5)  # 2 of 4 clients per round: idle ranks too
for run in "1 1" "2 1" "4 1" "2 2"; do
  set -- $run
  "$mpiexec" -n "$1" --oversubscribe "$pfcr" pretrain "${common[@]}" -t "$2" --set output_dir="$work/r$1t$2" >"$work/r$1t$2.out"
done
grep -q "pretrain: pfcr, 4 clients, 4 ranks, 2 rounds" "$work/r4t1.out" && pass "pretrain on 4 ranks" || failed "pretrain: $(cat "$work/r4t1.out")"
for other in r2t1 r4t1 r2t2; do
  same_metrics "$work/r1t1/metrics.jsonl" "$work/$other/metrics.jsonl" && pass "metrics identical: 1 rank 1 thread vs $other" \
    || failed "metrics differ: r1t1 vs $other"
done
# User shards: 4 domains x 3 shards = 12 clients, identical on 1 and 4 ranks.
for n in 1 4; do
  "$mpiexec" -n "$n" --oversubscribe "$pfcr" pretrain "${common[@]}" --set data.shards_per_domain=3 \
    --set output_dir="$work/sh$n" >"$work/sh$n.out"
done
grep -q "pretrain: pfcr, 12 clients, 4 ranks" "$work/sh4.out" && pass "12 shard clients on 4 ranks" || failed "shards: $(cat "$work/sh4.out")"
same_metrics "$work/sh1/metrics.jsonl" "$work/sh4/metrics.jsonl" && pass "shard clients: metrics identical on 1 and 4 ranks" \
  || failed "shard clients: metrics differ"
# Every algorithm over 8 shard clients (4 sampled per round): 1 rank x 1 thread vs 2 ranks x 2
# threads, so several clients of a rank run as parallel tasks (centralized: rank 1 idles).
for alg in fedavg fedprox scaffold local "fedavg whole" "scaffold whole" centralized; do
  set -- $alg
  extra=(--set federation.algorithm=$1 --set data.shards_per_domain=2)
  [ $# -gt 1 ] && extra+=(--set federation.shared=$2)
  big=2  # centralized: the pooled client on rank 0, rank 1 idle
  a="$work/${alg// /-}"  # a fresh run directory each (an existing checkpoint would be resumed)
  "$mpiexec" -n 1 "$pfcr" pretrain "${common[@]}" "${extra[@]}" -t 1 --set output_dir="$a-1" >"$a-1.out"
  "$mpiexec" -n $big --oversubscribe "$pfcr" pretrain "${common[@]}" "${extra[@]}" -t 2 --set output_dir="$a-$big" >"$a-$big.out"
  grep -q "pretrain: $1, " "$a-1.out" || failed "$alg: $(cat "$a-1.out")"
  same_metrics "$a-1/metrics.jsonl" "$a-$big/metrics.jsonl" && pass "$alg: metrics identical, 1 rank x 1 thread vs $big x 2" \
    || failed "$alg: metrics differ between 1 and $big ranks"
done
if "$mpiexec" -n 5 --oversubscribe "$pfcr" pretrain "${common[@]}" --set output_dir="$work/r5" >/dev/null 2>"$work/r5.err"; then
  failed "5 ranks for 4 clients accepted"
else
  grep -q "5 ranks but only 4 clients" "$work/r5.err" && pass "more ranks than clients rejected" || failed "r5: $(cat "$work/r5.err")"
fi
finish "pretrain ranks"
