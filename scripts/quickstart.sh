#!/usr/bin/env bash
# Quick start, command 1: install dependencies, build the release binary, and run the main
# job on the bundled real data (Scientific + Office2014): prepare, then inspect the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target pfcr
./build/release/bin/pfcr prepare -c configs/scientific-office.yaml
./build/release/bin/pfcr inspect runs/scientific-office/prepared.h5
