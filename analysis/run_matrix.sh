#!/usr/bin/env bash
# Runs the lines of a benchmark matrix file (configs/paper/matrix.txt: `<run-name> <pfcr run
# arguments>`, the SLURM array format) one after another on this machine:
#   mpirun -n $RANKS $PFCR run <arguments> -t $THREADS --set output_dir=<runs_root>/<run-name>
# A run whose <runs_root>/<run-name>/results.json exists is skipped; an interrupted run is simply
# run again (pfcr run resumes pre-training from its checkpoint). It does not parallelise runs.
#
# Usage: analysis/run_matrix.sh MATRIX RUNS_ROOT [REGEX]
#   REGEX   only run names matching this bash regex (e.g. '^pfcr-' or '-s1$')
# Environment: RANKS (2), THREADS (cores / RANKS, at least 1), PFCR (build/release/bin/pfcr),
#   MPIRUN (mpirun), DRY_RUN=1 (print the commands only). Paths are relative to the repository
#   root, where the script runs. Each run's output goes to <runs_root>/<run-name>/pfcr.log.
# Exit status: 0 all done, 1 some run failed (the others still ran), 75 a run was stopped by a
#   signal (SIGTERM/SIGUSR1; the remaining runs are not started), 2 usage.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
matrix=$1
root=$2
regex=${3:-}
[ -f "$matrix" ] || { echo "run_matrix: $matrix: no such file" >&2; exit 2; }
matrix=$(realpath "$matrix")
mkdir -p "$root"
root=$(realpath "$root")
cd "$(dirname "$0")/.."

RANKS=${RANKS:-2}
THREADS=${THREADS:-$(( $(nproc) / RANKS > 0 ? $(nproc) / RANKS : 1 ))}
PFCR=${PFCR:-build/release/bin/pfcr}
MPIRUN=${MPIRUN:-mpirun}
DRY_RUN=${DRY_RUN:-0}
if [ "$(id -u)" -eq 0 ]; then  # as the README: Open MPI refuses root unless told otherwise
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ "$DRY_RUN" != 1 ] && [ ! -x "$PFCR" ]; then
  echo "run_matrix: $PFCR not found; build first (cmake --preset release && cmake --build --preset release)" >&2
  exit 2
fi

# The selected lines: skip blanks and # comments, filter by REGEX.
names=() lines=()
while read -r name rest || [ -n "${name:-}" ]; do
  [ -z "${name:-}" ] || [[ $name == \#* ]] && continue
  [ -n "$regex" ] && ! [[ $name =~ $regex ]] && continue
  names+=("$name")
  lines+=("$rest")
done <"$matrix"
total=${#names[@]}
[ "$total" -gt 0 ] || { echo "run_matrix: no line of $matrix matches '${regex}'" >&2; exit 2; }
echo "run_matrix: $total runs from $matrix into $root ($RANKS ranks x $THREADS threads)"

failed=() done_count=0 skipped=0 start_all=$SECONDS
for i in "${!names[@]}"; do
  name=${names[$i]}
  read -r -a args <<<"${lines[$i]}"
  out=$root/$name
  tag="[$((i + 1))/$total] $name"
  if [ -f "$out/results.json" ]; then
    echo "$tag: results.json exists, skipped"
    skipped=$((skipped + 1))
    continue
  fi
  cmd=("$MPIRUN" -n "$RANKS" "$PFCR" run "${args[@]}" -t "$THREADS" --set "output_dir=$out")
  if [ "$DRY_RUN" = 1 ]; then
    echo "$tag: ${cmd[*]}"
    continue
  fi
  mkdir -p "$out"
  echo "$tag: running (log $out/pfcr.log)"
  start=$SECONDS
  status=0
  "${cmd[@]}" >"$out/pfcr.log" 2>&1 || status=$?
  if [ "$status" -eq 0 ] && [ -f "$out/results.json" ]; then
    done_count=$((done_count + 1))
    summary=$(grep -o '"mean_test": {[^}]*}' "$out/results.json" || true)
    echo "$tag: done in $((SECONDS - start)) s  ${summary#\"mean_test\": }"
  elif [ "$status" -eq 75 ]; then
    echo "$tag: stopped by a signal (exit 75); run the same command again to resume" >&2
    exit 75
  else
    echo "$tag: FAILED (exit $status) after $((SECONDS - start)) s; last lines of $out/pfcr.log:" >&2
    tail -n 5 "$out/pfcr.log" | sed 's/^/    /' >&2
    failed+=("$name")
  fi
done
echo "run_matrix: $done_count run, $skipped skipped, ${#failed[@]} failed in $((SECONDS - start_all)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_matrix: failed: ${failed[*]}" >&2
  exit 1
fi
