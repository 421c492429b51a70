#!/usr/bin/python3
"""Train-throughput comparison: the same PFCR model (tests/reference/pfcr_torch.py, paper
config, dropout 0.5, Adam) in PyTorch on the same real Scientific train histories, three ways:
RecBole-style padding to 50, per-batch padding, and the expert variant without padding work
(tests/reference/pfcr_torch_packed.py: token-packed linear layers, attention per length group,
last layer pruned to the read position, embedding_bag code means), at 1 and 2 threads; prints
sequences/s, which BLAS PyTorch runs on, and the ratio to pfcr's Google Benchmark numbers.
--check first verifies that the expert variant's loss and gradients equal the padded model's
(double precision, dropout off) on real batches.

Usage (after `bench_train --benchmark_out=bench.json --benchmark_out_format=json`):
  /usr/bin/python3 analysis/bench_pytorch.py --check --pfcr-json bench.json
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from pfcr_torch import Hyper, PFCRModel  # noqa: E402
from pfcr_torch_packed import PackedBatch, PackedPFCR, check_equal  # noqa: E402


def blas_in_use():
    """The BLAS shared object actually mapped into this process (Debian alternatives)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    names = sorted(os.path.realpath(p) for p in libs)
    core = ""
    for p in names:
        if "openblas" in p:
            import ctypes
            lib = ctypes.CDLL(p)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            core = f" (OpenBLAS core: {lib.openblas_get_corename().decode()}, " \
                   f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})"
            break
    return (", ".join(names) or "none mapped") + core


def load(path, domain):
    with h5py.File(path, "r") as f:
        g = f["domains"][domain]
        codes = g["item_codes"][()].astype(np.int64)
        tr = g["train"]
        return codes, tr["indptr"][()], tr["items"][()], tr["targets"][()]


def make_batch(indptr, items, targets, rows, pad_to):
    lens = indptr[rows + 1] - indptr[rows]
    width = pad_to if pad_to else int(lens.max())
    seq = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        h = items[indptr[r]:indptr[r + 1]]
        seq[i, :len(h)] = h
    return torch.from_numpy(seq), torch.from_numpy(lens.astype(np.int64)), torch.from_numpy(targets[rows].astype(np.int64))


def histories(indptr, items, targets, rows):
    return ([items[indptr[r]:indptr[r + 1]].astype(np.int64) for r in rows],
            torch.from_numpy(targets[rows].astype(np.int64)))


def measure(codes, data, threads, pad_to, steps, batch_size):
    """pad_to: 50 (RecBole), 0 (per-batch padding) or None (the packed expert model)."""
    torch.set_num_threads(threads)
    torch.manual_seed(2020)
    packed = pad_to is None
    model = (PackedPFCR if packed else PFCRModel)(Hyper(), torch.from_numpy(codes)).float().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    indptr, items, targets = data
    perm = np.random.default_rng(0).permutation(len(targets))
    rows = [perm[i * batch_size:(i + 1) * batch_size] for i in range(steps + 1)]
    # Batches are laid out before timing in every variant (a DataLoader's work).
    if packed:
        batches = [PackedBatch(*histories(indptr, items, targets, r)) for r in rows]
    else:
        batches = [make_batch(indptr, items, targets, r, pad_to) for r in rows]

    def step(b):
        opt.zero_grad()
        loss = model.loss_packed(b) if packed else model.loss_and_logits(*b)[0]
        loss.backward()
        opt.step()

    step(batches[0])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches[1:]:
        step(b)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # CPU seconds per wall second: ~threads when every thread works (a check that the thread
    # setting took effect), lower when parts of the step run on one thread.
    return steps * batch_size / wall, cpu / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default="runs/scientific-office/prepared.h5")
    ap.add_argument("--domain", default="Scientific")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps per setting, after 1 warm-up (default: 16 for the expert "
                         "model, whose 4-step timings were too short to show its 2-thread gain; "
                         "4 for the padded ones, ~10 s a step)")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--pfcr-json", help="Google Benchmark JSON of bench_train, for the ratios")
    ap.add_argument("--expert-only", action="store_true",
                    help="time only the expert (packed) model, not the padded ones")
    ap.add_argument("--check", action="store_true",
                    help="first check the packed model against the padded one (double, 2 batches)")
    args = ap.parse_args()
    codes, *data = load(args.prepared, args.domain)
    if args.check:
        indptr, items, targets = data
        perm = np.random.default_rng(1).permutation(len(targets))
        for i in range(2):
            dl, dg = check_equal(torch.from_numpy(codes), *histories(indptr, items, targets,
                                                                     perm[i * 256:(i + 1) * 256]))
            print(f"check: packed vs padded (double, 256 rows): |loss diff| {dl:.1e}, "
                  f"max grad diff / max |grad| {dg:.1e}")
            if dl > 1e-13 or dg > 1e-12:
                sys.exit("check failed: the packed model does not compute the padded model's function")
    pfcr = {}
    if args.pfcr_json:
        for b in json.load(open(args.pfcr_json))["benchmarks"]:
            if b["name"].startswith("BM_TrainStep/"):
                pfcr[int(b["name"].split("/")[1])] = b["seqs_per_s"]
    print(f"torch {torch.__version__}; BLAS mapped: {blas_in_use()}")
    print("| threads | padding | PyTorch seqs/s | PyTorch CPU/wall | pfcr seqs/s | pfcr / PyTorch |")
    print("|---:|---|---:|---:|---:|---:|")
    variants = (("RecBole (to 50)", 50), ("per batch", 0), ("expert (packed)", None))
    for t in args.threads:
        for name, pad in variants:
            if args.expert_only and pad is not None:
                continue
            steps = args.steps or (16 if pad is None else 4)
            sps, util = measure(codes, data, t, pad, steps, args.batch_size)
            ours = pfcr.get(t)
            ratio = f"{ours / sps:.2f}x" if ours else "-"
            ours_s = f"{ours:,.0f}" if ours else "-"
            print(f"| {t} | {name} | {sps:,.1f} | {util:.2f} | {ours_s} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
