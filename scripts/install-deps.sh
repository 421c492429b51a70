#!/usr/bin/env bash
# Installs every Debian 12 package pfcr needs to build, test and run (as root, or via sudo).
# Idempotent: does nothing (and needs no network) when everything is already installed.
# --with-torch adds python3-torch (large: libtorch and its dependencies), needed only by the
# PyTorch side of the engine benchmark (analysis/bench_pytorch.py) and the fixture generator
# (tests/reference/); the build, the tests and every pfcr command run without it.
set -euo pipefail

with_torch=0
for arg in "$@"; do
  case "$arg" in
    --with-torch) with_torch=1 ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; # header
    *) echo "install-deps: unknown option '$arg' (known: --with-torch, --help)" >&2; exit 2 ;;
  esac
done

packages=(
  cmake g++ make git pkg-config
  libopenmpi-dev openmpi-bin            # MPI
  libeigen3-dev                         # GEMMs in the model
  libhdf5-openmpi-dev hdf5-tools        # parallel HDF5 (prepared.h5, checkpoints)
  libtbb-dev                            # oneTBB threads
  libyaml-cpp-dev libcli11-dev          # config, command line
  nlohmann-json3-dev                    # JSON documents (results.json)
  libfaiss-dev libopenblas0-openmp      # joint OPQ/PQ quantizer; OpenBLAS replaces reference BLAS
  libssl-dev                            # SHA-256 of inputs in manifests
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format                          # house style, checked by the test suite
  python3 python3-numpy python3-h5py    # analysis/ scripts and their tests
  python3-pandas python3-matplotlib     # analysis/ tables and plots
)
[ "$with_torch" -eq 0 ] || packages+=(python3-torch)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
