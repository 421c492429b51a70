#!/usr/bin/env bash
# Quick start, command 2 (and what CI runs): install dependencies, build everything, run the
# whole test suite (every label: unit, cli, mpi, slow, slurm — slurm starts a local SLURM, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake --preset release -DPFCR_BUILD_TESTS=ON -DPFCR_BUILD_BENCHMARKS=ON >/dev/null
cmake --build --preset release -j "$(nproc)"
ctest --preset release -j "$(nproc)" --no-tests=error "$@"
