#!/usr/bin/env bash
# Quick start, command 1: install dependencies, build the release binary, and run the main
# job on the bundled real data (Scientific + Office2014): the whole experiment with
# `pfcr run` on 2 MPI ranks (prepare -> federated pre-training -> fine-tuning -> test table),
# then validate the pre-training checkpoint it wrote. Budget: configs/quickstart.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target pfcr
# Open MPI refuses to run as root unless told that it is intended (containers, CI).
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpirun -n 2 --oversubscribe ./build/release/bin/pfcr run -t 1 \
  -c configs/scientific-office.yaml -c configs/quickstart.yaml
./build/release/bin/pfcr inspect "$(ls -d runs/quickstart/pretrain/ckpt/round_*.h5 | tail -1)" | tail -1
