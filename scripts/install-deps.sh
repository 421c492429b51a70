#!/usr/bin/env bash
# Installs every Debian 12 package pfcr needs to build, test and run (as root, or via sudo).
# Idempotent: does nothing (and needs no network) when everything is already installed.
set -euo pipefail

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
