#!/usr/bin/env bash
# A full disk, for real: small tmpfs file systems mounted by this test (root; skipped with
# status 77 where mounting is not allowed). Every write that runs out of space ends the command
# with exit 74 within seconds (never a hang: each command runs under `timeout`), one error line
# from rank 0, no temp file or half-written output left, the previous checkpoint the newest; and
# the same command, once there is room, finishes with the uninterrupted run's results.
#   - a pre-training checkpoint that does not fit (refused before the file is created);
#   - the disk filling up half-way through a parallel checkpoint write (pfcr_faults fills it);
#   - `pfcr prepare` onto a full disk (no SIGSEGV in HDF5's exit handler);
#   - pre-training's config.resolved.yaml / metrics.jsonl, fine-tuning's metrics.jsonl and
#     results.json on a full disk.
# Usage: test_full_disk.sh PFCR SRC MPIEXEC PFCR_FAULTS
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mpi_test_setup "$@"
pfcr_faults=${4:?usage: test_full_disk.sh PFCR SRC MPIEXEC PFCR_FAULTS}

# A tmpfs of the given size at $work/<name>, unmounted at exit.
mount_tmpfs() {
  mkdir -p "$work/$1"
  mount -t tmpfs -o "size=$2" tmpfs "$work/$1" 2>/dev/null || return 1
  at_exit "umount '$work/$1'"
}
if [ "$(id -u)" -ne 0 ] || ! mount_tmpfs probe 64k; then
  echo "SKIP full-disk tests need root and permission to mount a tmpfs"
  exit 77
fi

"$pfcr" synth -q -c "$src/configs/tiny.yaml" --set synth.output="$work/syn" >/dev/null
"$pfcr" prepare -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/prep" >/dev/null
common=(-c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set data.prepared="$work/prep/prepared.h5")
# Every command under a time limit: a hang fails the test instead of stalling it.
mpi() { local n=$1; shift; timeout 120 "$mpiexec" -n "$n" --oversubscribe "$@"; }
# exit 74, exactly one "error:" line (from rank 0), naming $2
io_error() {
  local status=$1 err=$2 what=$3
  [ "$status" -eq 74 ] && [ "$(grep -c 'error:' "$err")" -eq 1 ] && grep -q '^\[rank 0\] error: ' "$err" \
    && grep -q -- "$what" "$err" && ! grep -q "MPI_ABORT" "$err"
}
leftovers() { find "$@" -name '*.tmp*' -o -name '*.reserve' | grep -q .; }

# 1. The uninterrupted reference: 3 rounds of pre-training, then fine-tuning.
mpi 2 "$pfcr" pretrain -q "${common[@]}" --set federation.rounds=3 --set output_dir="$work/ref" >/dev/null 2>&1
mpi 2 "$pfcr" finetune -q "${common[@]}" --set epochs=2 --set output_dir="$work/ref-ft" \
  --from "$work/ref/ckpt" >/dev/null 2>&1
size=$(stat -c %s "$work/ref/ckpt/round_000003.h5")

# 2. Round 2's checkpoint does not fit (room for one ~0.6 MB file, refused before writing).
mount_tmpfs small 1300k
status=0
mpi 2 "$pfcr" pretrain -q "${common[@]}" --set federation.rounds=3 --set output_dir="$work/a" \
  --set checkpoint.dir="$work/small/ckpt" >"$work/a.out" 2>"$work/a.err" || status=$?
io_error "$status" "$work/a.err" "no room for checkpoint round_000002.h5: it needs about" \
  && grep -q "round_000001.h5 stays the newest checkpoint" "$work/a.err" \
  && [ "$(ls "$work/small/ckpt")" = "round_000001.h5" ] \
  && pass "checkpoint that does not fit: exit 74, one message, round_000001.h5 stays the newest (file ${size} B)" \
  || failed "checkpoint that does not fit: status $status, $(head -3 "$work/a.err"), files: $(ls "$work/small/ckpt")"
# Room again: the same command resumes and ends where the uninterrupted run ended.
mount -o remount,size=16m "$work/small"
mpi 2 "$pfcr" pretrain -q "${common[@]}" --set federation.rounds=3 --set output_dir="$work/a" \
  --set checkpoint.dir="$work/small/ckpt" >/dev/null 2>"$work/a2.err" \
  && same_ckpt "$work/small/ckpt/round_000003.h5" "$work/ref/ckpt/round_000003.h5" \
  && same_metrics "$work/a/metrics.jsonl" "$work/ref/metrics.jsonl" \
  && pass "after freeing space: resumed to the uninterrupted run's checkpoint and metrics.jsonl" \
  || failed "resume after a full disk: $(tail -3 "$work/a2.err")"

# 3. The disk fills up while every rank writes round 2's checkpoint (parallel HDF5): the data
#    writes fail, the close still finds room (reserved), every rank learns it; no hang.
mount_tmpfs mid 8m
status=0
start=$SECONDS
PFCR_TEST_FILL_DISK_DURING_CHECKPOINT="2:$work/mid/filler" mpi 2 -x PFCR_TEST_FILL_DISK_DURING_CHECKPOINT \
  "$pfcr_faults" pretrain -q "${common[@]}" --set federation.rounds=3 --set output_dir="$work/b" \
  --set checkpoint.dir="$work/mid/ckpt" >"$work/b.out" 2>"$work/b.err" || status=$?
io_error "$status" "$work/b.err" "checkpoint round_000002.h5 could not be written" \
  && grep -q "is full" "$work/b.err" && ! leftovers "$work/mid/ckpt" \
  && [ "$(ls "$work/mid/ckpt")" = "round_000001.h5" ] && "$pfcr" inspect "$work/mid/ckpt/round_000001.h5" >/dev/null 2>&1 \
  && pass "disk full during the parallel write: exit 74 after $((SECONDS - start)) s, temp file removed, round 1 intact" \
  || failed "disk full mid-write: status $status, $(grep error: "$work/b.err" | head -2), files: $(ls "$work/mid/ckpt")"
rm -f "$work/mid/filler" "$work/mid/filler.done"
mpi 2 "$pfcr" pretrain -q "${common[@]}" --set federation.rounds=3 --set output_dir="$work/b" \
  --set checkpoint.dir="$work/mid/ckpt" >/dev/null 2>&1 \
  && same_ckpt "$work/mid/ckpt/round_000003.h5" "$work/ref/ckpt/round_000003.h5" \
  && pass "after freeing space: resumed to the uninterrupted run's checkpoint" || failed "resume after mid-write fill"

# 4. prepare onto a full disk: the error, exit 74, no prepared.h5 and no temp file, no crash.
mount_tmpfs tiny 200k
status=0
"$pfcr" prepare -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set output_dir="$work/tiny/p" \
  >/dev/null 2>"$work/c.err" || status=$?
[ "$status" -eq 74 ] && grep -q "prepared.h5.*is full" "$work/c.err" && [ -z "$(ls -A "$work/tiny/p")" ] \
  && pass "prepare onto a full disk: exit 74, nothing left behind" \
  || failed "prepare full disk: status $status, $(head -2 "$work/c.err"), left: $(ls -A "$work/tiny/p")"

# 4b. The same under MPI (`pfcr run` prepares first): no crash in MPI_Finalize either.
status=0
mpi 2 "$pfcr" run -q -c "$src/configs/tiny.yaml" -c "$work/syn/synth.yaml" --set federation.rounds=2 \
  --set output_dir="$work/tiny/r" >/dev/null 2>"$work/c2.err" || status=$?
io_error "$status" "$work/c2.err" "prepared.h5.*is full" && [ -z "$(ls -A "$work/tiny/r")" ] \
  && pass "pfcr run preparing onto a full disk: exit 74, one message, nothing left behind" \
  || failed "run prepare full disk: status $status, $(grep -v '^-' "$work/c2.err" | head -3)"
rm -rf "$work/tiny/r"

# 5. The stages' own outputs on a full disk (checkpoints elsewhere).
mkdir -p "$work/tiny/out"
dd if=/dev/zero of="$work/tiny/fill" bs=64k 2>/dev/null || true # to the last byte
status=0
mpi 2 "$pfcr" pretrain -q "${common[@]}" --set federation.rounds=2 --set output_dir="$work/tiny/out" \
  --set checkpoint.dir="$work/d-ckpt" >/dev/null 2>"$work/d.err" || status=$?
io_error "$status" "$work/d.err" "No space left on device" && ! leftovers "$work/tiny/out" \
  && [ ! -e "$work/d-ckpt/round_000001.h5" ] \
  && pass "pre-training outputs on a full disk: exit 74 before round 1, one message" \
  || failed "pretrain outputs: status $status, $(head -2 "$work/d.err")"
status=0
mpi 2 "$pfcr" finetune -q "${common[@]}" --set epochs=2 --set output_dir="$work/tiny/out" \
  --set checkpoint.dir="$work/e-ckpt" --from "$work/ref/ckpt" >/dev/null 2>"$work/e.err" || status=$?
io_error "$status" "$work/e.err" "metrics.jsonl.*No space left on device" && ! leftovers "$work/tiny/out" \
  && [ ! -e "$work/tiny/out/results.json" ] \
  && pass "fine-tuning metrics.jsonl/results.json on a full disk: exit 74, nothing half-written" \
  || failed "finetune outputs: status $status, $(head -2 "$work/e.err")"
rm -f "$work/tiny/fill"
mpi 2 "$pfcr" finetune -q "${common[@]}" --set epochs=2 --set output_dir="$work/tiny/out" \
  --set checkpoint.dir="$work/e-ckpt" --from "$work/ref/ckpt" >/dev/null 2>&1 \
  && cmp -s <(grep -o '"domains".*' "$work/tiny/out/results.json") <(grep -o '"domains".*' "$work/ref-ft/results.json") \
  && same_metrics "$work/tiny/out/metrics.jsonl" "$work/ref-ft/metrics.jsonl" \
  && pass "after freeing space: the finished stage's results.json and metrics.jsonl as uninterrupted" \
  || failed "finetune rerun after full disk"

finish full_disk
