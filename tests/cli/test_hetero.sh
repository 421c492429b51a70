#!/usr/bin/env bash
# System heterogeneity on the virtual clock through the real binary under mpirun (issue 16):
# a deadline + over-commit run (with on/off availability, so every drop cause occurs) and a
# FedBuff run, both on 64 shard clients of the tiny synthetic data, give identical
# metrics.jsonl (apart from the wall-clock "time" objects) and final checkpoints at 1, 2 and 4
# ranks and 1 or 2 threads, and after a resume mid-run on another rank count; sim_time_s
# strictly increases; the drops and staleness the configs promise happen; an availability trace
# from pfcr synth works the same way; bad keys and traces are clear errors. Usage: test_hetero.sh PFCR_BINARY SOURCE_DIR [MPIEXEC]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mpi_test_setup "$@"

"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" >/dev/null
"$pfcr" prepare -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/prep" >/dev/null
base=(-q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set data.prepared="$work/prep/prepared.h5"
      --set data.shards_per_domain=16)
# Short on/off periods so that clients also go offline mid-round.
deadline=("${base[@]}" -c "$src/configs/hetero-deadline.yaml" --set federation.deadline_s=3
          --set federation.overcommit=0.6
          --set system.availability=onoff --set system.on_mean_s=20 --set system.off_mean_s=5)
async=("${base[@]}" -c "$src/configs/hetero-async.yaml" --set federation.eval_every=3
       --set system.availability=onoff --set system.on_mean_s=20 --set system.off_mean_s=5
       --set federation.max_staleness=3)

# Final checkpoint of a run directory.
last_ckpt() { ls "$1"/ckpt/round_*.h5 | sort | tail -1; }

run_mode() { # NAME ROUNDS HALF -- ARGS...
  local name=$1 rounds=$2 half=$3 n t
  shift 4
  for rt in "1 1" "2 2" "4 1"; do
    read -r n t <<<"$rt"
    "$mpiexec" -n "$n" "$pfcr" pretrain "$@" -t "$t" --set federation.rounds="$rounds" \
      --set output_dir="$work/$name-r${n}t$t" >"$work/$name-r${n}t$t.out" 2>&1 \
      || failed "$name: $n ranks x $t threads: $(tail -3 "$work/$name-r${n}t$t.out")"
  done
  for other in r2t2 r4t1; do
    same_metrics "$work/$name-r1t1/metrics.jsonl" "$work/$name-$other/metrics.jsonl" \
      && pass "$name: metrics identical, 1 rank x 1 thread vs $other" || failed "$name: metrics differ r1t1 vs $other"
    same_ckpt "$(last_ckpt "$work/$name-r1t1")" "$(last_ckpt "$work/$name-$other")" \
      && pass "$name: final checkpoint identical, r1t1 vs $other" || failed "$name: checkpoints differ r1t1 vs $other"
  done
  # Resume mid-run: the first half on 2 ranks, the rest on 4.
  local res="$work/$name-resume"
  "$mpiexec" -n 2 "$pfcr" pretrain "$@" --set federation.rounds="$half" --set output_dir="$res" >"$res-a.out" 2>&1 \
    || failed "$name: first half: $(tail -3 "$res-a.out")"
  "$mpiexec" -n 4 "$pfcr" pretrain "$@" --set federation.rounds="$rounds" --set output_dir="$res" >"$res-b.out" 2>&1 \
    || failed "$name: resumed half: $(tail -3 "$res-b.out")"
  same_metrics "$work/$name-r1t1/metrics.jsonl" "$res/metrics.jsonl" \
    && pass "$name: resumed after $half on 2 ranks, finished on 4 = uninterrupted" || failed "$name: resumed metrics differ"
  same_ckpt "$(last_ckpt "$work/$name-r1t1")" "$(last_ckpt "$res")" \
    && pass "$name: resumed final checkpoint identical" || failed "$name: resumed checkpoint differs"
}

run_mode deadline 6 3 -- "${deadline[@]}"
run_mode async 16 7 -- "${async[@]}"

# What the runs must show: strictly increasing sim_time_s, each drop cause, staleness > 0.
"$py" - "$work/deadline-r1t1/metrics.jsonl" "$work/async-r1t1/metrics.jsonl" <<'PY' && pass "clock and drops as configured" || failed "clock or drops"
import json, sys
ok = True
for path, event, causes in ((sys.argv[1], "round", ("deadline", "unavailable", "overcommit")),
                            (sys.argv[2], "server_step", ("unavailable", "stale"))):
    lines = [json.loads(l) for l in open(path)]
    steps = [d for d in lines if d["event"] == event]
    times = [d["sim_time_s"] for d in steps]
    if not steps or any(b <= a for a, b in zip(times, times[1:])) or times[0] <= 0:
        print(f"{path}: sim_time_s not strictly increasing: {times}"); ok = False
    for c in causes:
        if sum(d["dropped"][c] for d in steps) == 0:
            print(f"{path}: no client dropped for cause {c}"); ok = False
    if any(d["dropped"][c] != len(d["dropped_clients"][c]) for d in steps for c in d["dropped"]):
        print(f"{path}: dropped counts and ids disagree"); ok = False
    if not any(l["event"] == "valid" and 0 < l["recall@10"] <= 1 for l in lines):
        print(f"{path}: no validation line"); ok = False
    if event == "server_step":
        st = [s for d in steps for s in d["staleness"]]
        if max(st) == 0 or max(st) > 3:
            print(f"{path}: staleness {st} (want some > 0, none > max_staleness 3)"); ok = False
        if any(len(set(d["clients"])) != len(d["clients"]) for d in steps):
            print(f"{path}: a client twice in one buffer"); ok = False
sys.exit(0 if ok else 1)
PY

# An availability trace written by pfcr synth: a FedBuff run on it, identical on 1 and 2 ranks
# (2 threads), and clients that go offline are dropped.
"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" --set synth.trace_clients=64 \
  --set synth.trace_hours=0.5 --set system.on_mean_s=4 --set system.off_mean_s=2 >/dev/null
trace=("${base[@]}" -c "$src/configs/hetero-async.yaml" --set federation.rounds=12 --set checkpoint.every=0
       --set system.availability=trace --set system.trace="$work/syn/availability.csv")
"$mpiexec" -n 1 "$pfcr" pretrain "${trace[@]}" -t 1 --set output_dir="$work/trace-1" >"$work/trace-1.out" 2>&1 \
  || failed "trace run: $(tail -3 "$work/trace-1.out")"
"$mpiexec" -n 2 "$pfcr" pretrain "${trace[@]}" -t 2 --set output_dir="$work/trace-2" >"$work/trace-2.out" 2>&1 \
  || failed "trace run on 2 ranks: $(tail -3 "$work/trace-2.out")"
same_metrics "$work/trace-1/metrics.jsonl" "$work/trace-2/metrics.jsonl" \
  && pass "availability trace: metrics identical on 1 and 2 ranks" || failed "availability trace: metrics differ"
"$py" -c 'import json, sys
n = sum(d["dropped"]["unavailable"] for d in map(json.loads, open(sys.argv[1])) if d["event"] == "server_step")
sys.exit(0 if n > 0 else 1)' "$work/trace-1/metrics.jsonl" && pass "availability trace: offline clients dropped" \
  || failed "availability trace: nobody went offline"
# Resuming with a trace whose content changed is refused (the checkpoint records its SHA-256).
echo "# edited" >>"$work/syn/availability.csv"
if "$mpiexec" -n 1 "$pfcr" pretrain "${trace[@]}" --set federation.rounds=14 --set output_dir="$work/trace-1" \
  >/dev/null 2>"$work/trace-edit.err"; then
  failed "resume with an edited trace accepted"
else
  grep -q "availability trace with SHA-256" "$work/trace-edit.err" && pass "resume with an edited trace: clear error" \
    || failed "edited trace: $(cat "$work/trace-edit.err")"
fi
printf 'client,start_s,end_s\n0,0,10\n0,5,20\n' >"$work/bad-trace.csv"

# Bad keys: clear errors naming the key.
expect_error() { # WHAT PATTERN ARGS...
  local what=$1 pattern=$2
  shift 2
  if "$pfcr" pretrain "${base[@]}" --set output_dir="$work/bad" "$@" >/dev/null 2>"$work/bad.err"; then
    failed "$what accepted"
  else
    grep -q -- "$pattern" "$work/bad.err" && pass "$what: clear error" || failed "$what: $(cat "$work/bad.err")"
  fi
}
expect_error "async with scaffold" "federation.mode async" --set federation.mode=async --set federation.algorithm=scaffold
expect_error "deadline in async" "federation.deadline_s" --set federation.mode=async --set federation.deadline_s=5
expect_error "pareto without shape" "system.compute" --set system.compute=pareto --set system.compute_a=0.01
expect_error "unknown staleness weight" "federation.staleness_weight" --set federation.staleness_weight=linear
expect_error "buffer larger than concurrency" "federation.buffer_size" --set federation.mode=async \
  --set federation.concurrency=4 --set federation.buffer_size=8
expect_error "trace without a file" "system.trace" --set system.availability=trace
expect_error "overlapping trace intervals" "bad-trace.csv:3: interval of client 0 overlaps" \
  --set system.availability=trace --set system.trace="$work/bad-trace.csv"
finish "hetero"
