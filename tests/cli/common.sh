# Shared preamble of the bash tests (tests/cli/*.sh, tests/analysis/test_analysis.sh,
# tests/slurm/test_slurm_jobs.sh). Source it right after `set -euo pipefail`:
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# It gives:
#   py                  /usr/bin/python3 (Debian's, with numpy/h5py/matplotlib)
#   pass NAME / failed NAME, fails   one "ok   NAME" / "FAIL NAME" line; failed counts in $fails
#   finish LABEL        prints "LABEL: N failure(s)"; its status is the test's (0 iff none failed)
#   make_work [TEMPLATE]  $work = a fresh directory (mktemp -d [TEMPLATE]), removed at exit
#   at_exit 'COMMAND'   run COMMAND at exit, before $work is removed (errors ignored)
#   mpi_test_env        exports what mpiexec needs here: run as root (containers, CI),
#                       oversubscription (4 ranks on a 2-core machine) and, under the asan
#                       preset, no LeakSanitizer report of Open MPI's never-freed internals
#   mpi_test_setup PFCR SRC [MPIEXEC]   the preamble of the tests of the real binary under
#                       mpiexec: sets $pfcr, $src and $mpiexec (default: the mpiexec on PATH),
#                       then mpi_test_env and make_work
#   same_metrics A B    two metrics.jsonl equal but for their wall-clock "time" objects
#   same_ckpt A B       two checkpoints: every dataset bitwise equal, same round, Adam steps
#                       and RNG counters (attributes such as created_utc may differ)
py=/usr/bin/python3
fails=0
pass() { echo "ok   $1"; }
failed() { echo "FAIL $1"; fails=$((fails + 1)); }
finish() {
  echo "$1: $fails failure(s)"
  [ "$fails" -eq 0 ]
}

_at_exit=()
at_exit() { _at_exit+=("$1"); }
_on_exit() {
  local c
  for c in ${_at_exit[@]+"${_at_exit[@]}"}; do eval "$c" || true; done
  [ -z "${work:-}" ] || rm -rf "$work"
}
trap _on_exit EXIT
make_work() { work=$(mktemp -d "$@"); }

mpi_test_env() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export ASAN_OPTIONS=detect_leaks=0
}

mpi_test_setup() {
  pfcr=$1
  src=$2
  mpiexec=${3:-$(command -v mpiexec || true)}
  [ -n "$mpiexec" ] || { echo "FAIL no mpiexec (pass it as the third argument or put it on PATH)"; exit 1; }
  mpi_test_env
  make_work
}

# metrics.jsonl without its wall-clock "time" objects, one JSON object a line.
strip_times() {
  "$py" -c 'import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line); d.pop("time", None); print(json.dumps(d))' "$1"
}
same_metrics() { cmp -s <(strip_times "$1") <(strip_times "$2"); }

# Every dataset of two checkpoints bitwise equal (attrs like created_utc may differ).
same_ckpt() { "$py" - "$1" "$2" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def names(f):
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return out
na, nb = names(a), names(b)
ok = na == nb and all(np.array_equal(a[n][()], b[n][()]) for n in na)
ok = ok and all(a["clients"][c].attrs["rng_counter"] == b["clients"][c].attrs["rng_counter"] and
                a["clients"][c]["optim"].attrs["step"] == b["clients"][c]["optim"].attrs["step"]
                for c in a["clients"])
sys.exit(0 if ok and a.attrs["round"] == b.attrs["round"] else 1)
EOF
}
