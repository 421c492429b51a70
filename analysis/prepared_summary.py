#!/usr/bin/python3
"""Read a pfcr `prepared.h5` with h5py alone and print, per domain, the counts and a few
checks. It is both a tool and the executable example for docs/formats.md: everything it
touches is documented there. Exit status 1 if a check fails.

Usage: analysis/prepared_summary.py runs/scientific-office/prepared.h5 [--json]
"""
import argparse
import json
import sys

import h5py
import numpy as np


def load_split(group):
    """CSR split -> list of histories (internal item ids, oldest first), targets, users."""
    indptr = group["indptr"][()]
    items = group["items"][()]
    histories = [items[indptr[r]:indptr[r + 1]] for r in range(len(indptr) - 1)]
    return histories, group["targets"][()], group["users"][()]


def summarize(path):
    out = {"domains": []}
    problems = []
    with h5py.File(path, "r") as f:
        if f.attrs["format"] != "pfcr-prepared":
            raise SystemExit(f"{path}: not a pfcr-prepared file")
        m = f["manifest"].attrs
        out["quantizer"] = m["quantizer_factory"]
        code_dim, code_cap = int(m["code_dim"]), int(m["code_cap"])
        for name in f["domains/names"].asstr()[()]:
            g = f["domains"][name]
            n_items = int(g.attrs["n_items"])
            codes = g["item_codes"][()]  # (n_items+1, code_dim) rows of the shared code table
            # Row of sub-code m with value c is m*(code_cap+1)+c+1; row 0 is the padding item.
            values = codes[1:] - 1 - np.arange(code_dim) * (code_cap + 1)
            if not (codes[0] == 0).all() or values.min() < 0 or values.max() >= code_cap:
                problems.append(f"{name}: item_codes out of range")
            d = {"name": name, "users": int(g.attrs["n_users"]), "items": n_items}
            for split in ("train", "valid", "test"):
                hist, targets, users = load_split(g[split])
                d[split] = len(targets)
                if min(len(h) for h in hist) < 1 or targets.min() < 1 or targets.max() > n_items:
                    problems.append(f"{name}/{split}: bad history or target")
            pop = g["item_popularity"][()]
            if pop.sum() != d["train"]:
                problems.append(f"{name}: item_popularity does not sum to the train rows")
            out["domains"].append(d)
    return out, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    out, problems = summarize(args.path)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"quantizer {out['quantizer']}")
        for d in out["domains"]:
            print(f"{d['name']:<14} users {d['users']:>7} items {d['items']:>6} "
                  f"train {d['train']:>8} valid {d['valid']:>6} test {d['test']:>6}")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
