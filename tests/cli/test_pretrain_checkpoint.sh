#!/usr/bin/env bash
# Checkpoints and failure behaviour of `pfcr pretrain` (and `pfcr finetune` from its
# checkpoints) through the real binary under mpirun:
# every algorithm and privacy mechanism writes a checkpoint that analysis/check_checkpoint.py
# validates; 2 rounds on 1 rank + resume for 2 on 4 ranks == 4 rounds on 2 ranks (every
# dataset bitwise, metrics without timings); SIGUSR1 -> checkpoint + exit 75 + resume; SIGTERM
# through scripts/pfcr-mpirun and to a single rank -> checkpoint + exit 75; kill -9
# during a checkpoint write leaves the previous one loadable; NaN loss, a contradicting
# config, a wrong-format / wrong-version / wrong-shape checkpoint -> clear error, non-zero exit.
# The two injected faults (NaN weight, SIGKILL mid-write) use PFCR_FAULTS_BINARY: the same
# command line with test-only hooks (tests/cli/pfcr_faults.cpp).
# Usage: test_pretrain_checkpoint.sh PFCR_BINARY SOURCE_DIR MPIEXEC PFCR_FAULTS_BINARY
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mpi_test_setup "$1" "$2" "${3:-}"
pfcr_faults=${4:?usage: test_pretrain_checkpoint.sh PFCR SRC MPIEXEC PFCR_FAULTS}
pid=
at_exit '[ -z "$pid" ] || kill $pid 2>/dev/null'
valid() { "$py" "$src/analysis/check_checkpoint.py" "$1" >"$work/check.out" 2>&1; }

"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" >/dev/null
"$pfcr" prepare -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/prep" >/dev/null
common=(-c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set data.prepared="$work/prep/prepared.h5"
        --set federation.client_fraction=0.5)
run() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe "$pfcr" pretrain -q "${common[@]}" "$@"; }
# The same with the fault hooks (environment variables read only by pfcr_faults).
run_faults() {
  local n=$1; shift
  "$mpiexec" -n "$n" --oversubscribe "$pfcr_faults" pretrain -q "${common[@]}" "$@"
}

# --- every algorithm, every privacy mechanism: completes, checkpoint validates
for alg in pfcr fedavg fedprox scaffold local "fedavg whole" "fedprox whole" "scaffold whole" \
           centralized "pfcr pfcr-reference" "pfcr randomized-response" "pfcr gaussian" \
           "fedavg randomized-response"; do
  set -- $alg
  extra=(--set federation.algorithm=$1 --set federation.rounds=2)
  case "${2:-}" in
    whole) extra+=(--set federation.shared=whole) ;;
    "") ;;
    *) extra+=(--set privacy.mechanism=$2) ;;
  esac
  n=2; [ "$1" = centralized ] && n=1
  out="$work/alg-${alg// /-}"
  if run $n "${extra[@]}" --set output_dir="$out" >"$out.log" 2>&1 && valid "$out/ckpt/round_000002.h5"; then
    pass "$alg: 2 rounds, checkpoint valid ($(cat "$work/check.out"))"
  else
    failed "$alg: $(tail -3 "$out.log") $(cat "$work/check.out" 2>/dev/null)"
  fi
done
"$mpiexec" -n 1 "$pfcr" pretrain "${common[@]}" --set privacy.mechanism=pfcr-reference --set federation.rounds=1 \
  --set output_dir="$work/warn" 2>&1 | grep -q "NOT a valid local-DP" && pass "pfcr-reference warns in the log" \
  || failed "pfcr-reference: no warning"

# --- resume: 2 rounds on 1 rank + 2 more on 4 ranks == 4 rounds on 2 ranks
run 2 --set federation.rounds=4 --set output_dir="$work/full" >/dev/null
run 1 --set federation.rounds=2 --set output_dir="$work/split" >/dev/null
run 4 --set federation.rounds=4 --set output_dir="$work/split" >"$work/split.out"
same_ckpt "$work/full/ckpt/round_000004.h5" "$work/split/ckpt/round_000004.h5" \
  && pass "2 rounds (1 rank) + resume 2 (4 ranks) == 4 rounds (2 ranks): every dataset bitwise" \
  || failed "resumed checkpoint differs"
same_metrics "$work/full/metrics.jsonl" "$work/split/metrics.jsonl" && pass "resumed metrics.jsonl identical" \
  || failed "resumed metrics differ"
ls "$work/full/ckpt" | tr '\n' ' ' | grep -qx "round_000003.h5 round_000004.h5 " && pass "checkpoint.keep=2 keeps the newest two" \
  || failed "kept checkpoints: $(ls "$work/full/ckpt")"
# Explicit --resume from a directory, with SCAFFOLD (server and client control variates).
run 2 --set federation.algorithm=scaffold --set federation.rounds=3 --set output_dir="$work/sc3" >/dev/null
run 2 --set federation.algorithm=scaffold --set federation.rounds=1 --set output_dir="$work/sc1" >/dev/null
run 1 --set federation.algorithm=scaffold --set federation.rounds=3 --set output_dir="$work/sc1b" \
  --resume "$work/sc1/ckpt" >/dev/null
same_ckpt "$work/sc3/ckpt/round_000003.h5" "$work/sc1b/ckpt/round_000003.h5" \
  && pass "scaffold: --resume DIR continues the exact trajectory" || failed "scaffold resume differs"

# --- SIGUSR1 (SLURM's warning): finish the round, checkpoint, exit 75; a rerun resumes
set +e
# mpirun itself in the background (not a shell function): the signal goes to mpirun, which
# forwards SIGUSR1 to every rank, as srun does on a cluster.
"$mpiexec" -n 2 --oversubscribe "$pfcr" pretrain -q "${common[@]}" --set federation.rounds=3000 \
  --set checkpoint.every=0 --set output_dir="$work/sig" >"$work/sig.out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$work/sig/metrics.jsonl" ] && [ "$(wc -l <"$work/sig/metrics.jsonl")" -ge 3 ] && break; sleep 0.1; done
kill -USR1 $pid
wait $pid
rc=$?
pid=
set -e
done_rounds=$(ls "$work/sig/ckpt" 2>/dev/null | sed -n 's/round_0*\([0-9][0-9]*\)\.h5$/\1/p' | tail -1)
if [ "$rc" -eq 75 ] && [ -n "$done_rounds" ] && valid "$work/sig/ckpt/$(ls "$work/sig/ckpt" 2>/dev/null | tail -1)"; then
  pass "SIGUSR1: exit 75 with a valid checkpoint after round $done_rounds"
else
  failed "SIGUSR1: rc $rc, ckpt '$(ls "$work/sig/ckpt" 2>/dev/null)': $(tail -3 "$work/sig.out")"
fi
grep -q '"event": "preempted"' "$work/sig/metrics.jsonl" && pass "preempted event in metrics.jsonl" || failed "no preempted event"
if [ -n "$done_rounds" ]; then
  total=$((done_rounds + 2))
  run 1 --set federation.rounds=$total --set checkpoint.every=0 --set output_dir="$work/sig" >/dev/null
  run 2 --set federation.rounds=$total --set checkpoint.every=0 --set output_dir="$work/nosig" >/dev/null
  f=$(printf 'round_%06d.h5' $total)
  same_ckpt "$work/sig/ckpt/$f" "$work/nosig/ckpt/$f" && pass "preempted + resumed == uninterrupted ($total rounds)" \
    || failed "preempted run resumed differently"
  same_metrics "$work/sig/metrics.jsonl" "$work/nosig/metrics.jsonl" && pass "preempted + resumed metrics identical" \
    || failed "preempted metrics differ"
fi

# --- SIGTERM (a plain `kill`, scancel): Open MPI's mpirun cannot forward it (it kills the ranks
#     after 1 s and exits 1), so it goes (a) to scripts/pfcr-mpirun, which turns it into SIGUSR1
#     for mpirun, and (b) to one rank only: every rank stops after the round (they agree on the
#     stop flag), checkpoint, exit 75.
sigterm_case() { # NAME: the remaining arguments start the run in the background
  local name=$1 rc=0
  shift
  "$@" pretrain -q "${common[@]}" --set federation.rounds=3000 --set checkpoint.every=0 \
    --set output_dir="$work/$name" >"$work/$name.out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$work/$name/metrics.jsonl" ] && [ "$(wc -l <"$work/$name/metrics.jsonl")" -ge 3 ] && break; sleep 0.1; done
}
sigterm_case term-wrapper env MPIRUN="$mpiexec" "$src/scripts/pfcr-mpirun" -n 2 --oversubscribe "$pfcr"
kill -TERM $pid
rc=0; wait $pid || rc=$?; pid=
ck=$(ls "$work/term-wrapper/ckpt" 2>/dev/null | tail -1)
[ "$rc" -eq 75 ] && [ -n "$ck" ] && valid "$work/term-wrapper/ckpt/$ck" \
  && pass "SIGTERM to scripts/pfcr-mpirun: exit 75 with a valid checkpoint ($ck)" \
  || failed "SIGTERM to pfcr-mpirun: rc $rc, ckpt '$ck': $(tail -3 "$work/term-wrapper.out")"
sigterm_case term-rank "$mpiexec" -n 2 --oversubscribe "$pfcr"
rank_pid=$(pgrep -P $pid -f "pfcr pretrain" | tail -1 || true)
[ -n "$rank_pid" ] && kill -TERM "$rank_pid"
rc=0; wait $pid || rc=$?; pid=
ck=$(ls "$work/term-rank/ckpt" 2>/dev/null | tail -1)
[ -n "$rank_pid" ] && [ "$rc" -eq 75 ] && [ -n "$ck" ] && valid "$work/term-rank/ckpt/$ck" \
  && pass "SIGTERM to one rank only: every rank stops after the round, exit 75, valid checkpoint ($ck)" \
  || failed "SIGTERM to one rank (pid '${rank_pid}'): rc $rc, ckpt '$ck': $(tail -3 "$work/term-rank.out")"

# --- kill -9 in the middle of writing round 3: round 2 stays loadable, a rerun resumes from it
set +e
PFCR_TEST_KILL_DURING_CHECKPOINT=3 run_faults 2 --set federation.rounds=4 --set output_dir="$work/k9" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] && [ ! -e "$work/k9/ckpt/round_000003.h5" ] && valid "$work/k9/ckpt/round_000002.h5" \
  && pass "kill -9 during checkpoint write: previous checkpoint valid (rc $rc, $(ls "$work/k9/ckpt" | tr '\n' ' '))" \
  || failed "kill -9: rc $rc, $(ls "$work/k9/ckpt" 2>&1)"
run 2 --set federation.rounds=4 --set output_dir="$work/k9" >/dev/null
same_ckpt "$work/full/ckpt/round_000004.h5" "$work/k9/ckpt/round_000004.h5" && pass "after kill -9: resume == uninterrupted" \
  || failed "after kill -9: differs"
[ -z "$(ls "$work/k9/ckpt" | grep tmp)" ] && pass "stale .tmp removed by the next write" || failed "stale tmp left: $(ls "$work/k9/ckpt")"

# --- failures: clear message, non-zero exit, last good checkpoint intact
expect_error() { # name, grep pattern, command... (environment assignments before it pass through)
  local name=$1 pattern=$2; shift 2
  if "$@" >"$work/err.out" 2>&1; then failed "$name: accepted"; return; fi
  grep -q -- "$pattern" "$work/err.out" && pass "$name: $(grep -m1 -o -- "$pattern.*" "$work/err.out" | cut -c1-110)" \
    || failed "$name: $(tail -3 "$work/err.out")"
}
# Client 1 gets a NaN weight before round 2 (test-only hook): the real loss check fires.
PFCR_TEST_NAN_AT=2:1 expect_error "NaN loss" "round 2, client 1 (domain .*non-finite" run_faults 2 --set federation.rounds=5 \
  --set federation.client_fraction=1 --set output_dir="$work/nan"
# One error, printed once (by rank 0, with the owning rank's details), no MPI_Abort banner.
once() { # name: err.out has exactly one "error:" line and no abort banner
  local n; n=$(grep -c "error:" "$work/err.out" || true)
  [ "$n" -eq 1 ] && ! grep -q "MPI_ABORT" "$work/err.out" && pass "$1: one message, no MPI_Abort" \
    || failed "$1: $n error lines: $(cat "$work/err.out")"
}
once "NaN loss on client 1"
[ -e "$work/nan/ckpt/round_000002.h5" ] && [ ! -e "$work/nan/ckpt/round_000003.h5" ] \
  && [ -z "$(ls "$work/nan/ckpt" | grep tmp)" ] && valid "$work/nan/ckpt/round_000002.h5" \
  && pass "NaN: the last good checkpoint (round 2) is intact and valid, nothing written after" \
  || failed "NaN: checkpoints $(ls "$work/nan/ckpt")"
# The production binary has no test switch: the same variable changes nothing there.
PFCR_TEST_NAN_AT=0:0 run 1 --set federation.rounds=1 --set output_dir="$work/nohook" >/dev/null 2>&1 \
  && pass "production pfcr ignores PFCR_TEST_NAN_AT (hooks live in the test program only)" \
  || failed "production pfcr reacted to PFCR_TEST_NAN_AT"
expect_error "config contradicts checkpoint" "config key 'learning_rate' is 0.001 in the checkpoint but 0.002" \
  run 1 --set federation.rounds=5 --set output_dir="$work/full" --set learning_rate=0.002
expect_error "config contradicts checkpoint (2 ranks)" "config key 'learning_rate' is 0.001 in the checkpoint" \
  run 2 --set federation.rounds=5 --set output_dir="$work/full" --set learning_rate=0.002
once "config contradicts checkpoint on 2 ranks"
expect_error "model shape contradicts checkpoint" "config key 'hidden_size' is 32 in the checkpoint but 64" \
  run 1 --set federation.rounds=5 --set output_dir="$work/full" --set hidden_size=64 --set inner_size=64
mkdir -p "$work/bad"
cp "$work/prep/prepared.h5" "$work/bad/round_000009.h5"
expect_error "wrong format" "expected 'pfcr-checkpoint'" run 1 --set federation.rounds=10 \
  --set output_dir="$work/badrun" --resume "$work/bad/round_000009.h5"
cp "$work/full/ckpt/round_000004.h5" "$work/bad/v.h5"
"$py" -c 'import h5py, sys; h5py.File(sys.argv[1], "r+").attrs["format_version"] = "0.9"' "$work/bad/v.h5"
expect_error "wrong version" "0.9.*1.0" run 1 --set federation.rounds=10 --set output_dir="$work/badrun" --resume "$work/bad/v.h5"
cp "$work/full/ckpt/round_000004.h5" "$work/bad/s.h5"
"$py" - "$work/bad/s.h5" <<'EOF'
import h5py, sys, numpy as np
f = h5py.File(sys.argv[1], "r+")
name = "clients/1/model/LayerNorm.weight"
del f[name]
f.create_dataset(name, data=np.ones(7, dtype=np.float32))
EOF
expect_error "wrong tensor shape" "LayerNorm.weight" run 1 --set federation.rounds=10 --set output_dir="$work/badrun" \
  --resume "$work/bad/s.h5"
valid "$work/bad/s.h5" && failed "check_checkpoint.py accepted a wrong shape" || pass "check_checkpoint.py rejects a wrong shape"
expect_error "inspect: wrong shape" "LayerNorm.weight" "$pfcr" inspect "$work/bad/s.h5"
"$pfcr" inspect "$work/full/ckpt/round_000004.h5" >"$work/inspect.out" && grep -q "pretrain" "$work/inspect.out" \
  && pass "pfcr inspect validates a checkpoint" || failed "inspect: $(tail -3 "$work/inspect.out")"
l2=$($py -c 'import sys, h5py, numpy as np; print("%.6g" % np.linalg.norm(h5py.File(sys.argv[1], "r")["server/pq_code_embedding.weight"][...].astype(np.float64)))' \
  "$work/full/ckpt/round_000004.h5")
grep -q "^  pq_code_embedding.weight  \[[0-9, ]*\]  L2 $l2\$" "$work/inspect.out" \
  && pass "pfcr inspect prints the server table's L2 norm ($l2, as h5py computes it)" || failed "inspect L2: want $l2: $(grep L2 "$work/inspect.out")"

# --- finetune from a pre-training checkpoint: same results on 1 and 2 ranks, valid checkpoint
ft() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe "$pfcr" finetune -q "${common[@]}" --set epochs=3 "$@"; }
ft 1 --from "$work/full/ckpt" --set output_dir="$work/ft1" >/dev/null
ft 2 --from "$work/full/ckpt" --set output_dir="$work/ft2" >"$work/ft2.out"
cmp -s "$work/ft1/results.json" "$work/ft2/results.json" && grep -q '"from": ".*round_000004.h5"' "$work/ft1/results.json" \
  && pass "finetune --from a pretrain checkpoint: results.json identical on 1 and 2 ranks" || failed "finetune ranks differ"
same_metrics "$work/ft1/metrics.jsonl" "$work/ft2/metrics.jsonl" && pass "finetune metrics identical on 1 and 2 ranks" \
  || failed "finetune metrics differ"
valid "$work/ft2/ckpt/$(ls "$work/ft2/ckpt" | tail -1)" && pass "finetune checkpoint valid ($(cat "$work/check.out" | sed 's/.*: //'))" \
  || failed "finetune checkpoint: $(cat "$work/check.out")"
for mode in prompt-full prompt-light; do
  ft 1 --mode $mode --from "$work/full/ckpt" --set output_dir="$work/ft1-$mode" >/dev/null
  ft 2 --mode $mode --from "$work/full/ckpt" --set output_dir="$work/ft2-$mode" >/dev/null
  cmp -s "$work/ft1-$mode/results.json" "$work/ft2-$mode/results.json" \
    && valid "$work/ft2-$mode/ckpt/$(ls "$work/ft2-$mode/ckpt" | tail -1)" \
    && pass "finetune --mode $mode from the pretrain checkpoint: same on 1 and 2 ranks, checkpoint valid" \
    || failed "finetune $mode: $(cat "$work/check.out")"
done
ft 1 --set output_dir="$work/ft0" >/dev/null
cmp -s "$work/ft0/results.json" "$work/ft1/results.json" && failed "pre-training changed nothing" \
  || pass "fine-tuning from scratch differs from fine-tuning the pre-trained model"
run 1 --set federation.algorithm=centralized --set federation.rounds=1 --set output_dir="$work/cen" >/dev/null
ft 2 --from "$work/cen/ckpt" --set output_dir="$work/ftc" >/dev/null && grep -q '"mean_test"' "$work/ftc/results.json" \
  && pass "finetune from a centralized checkpoint (one pooled model for every client)" || failed "finetune from centralized"
expect_error "finetune from a finetune checkpoint" "expected 'pretrain'" ft 1 --from "$work/ft1/ckpt" --set output_dir="$work/ftx"
expect_error "finetune with another model shape" "config key 'hidden_size' is 32 in the checkpoint but 64" \
  ft 1 --from "$work/full/ckpt" --set hidden_size=64 --set inner_size=64 --set output_dir="$work/ftx"

finish "pretrain checkpoints"
