#!/usr/bin/python3
"""Validate the schema of a pfcr checkpoint (round_%06d.h5, docs/formats.md) with h5py alone.

Checks: root attributes present with their types, format/format_version, /server datasets
float32, every /clients/<id> has its attributes and the same tensor set, Adam moments m/v for
every model tensor when a client has optimizer state, shapes consistent with the model sizes
in the stored config (hidden_size, inner_size, n_layers, code_dim, code_cap,
MAX_ITEM_LIST_LENGTH), no NaN/Inf. `pfcr inspect` runs the same checks.
Exit 0 with one summary line if valid; exit 1 with one line per problem otherwise.

Usage: analysis/check_checkpoint.py runs/x/ckpt/round_000010.h5
"""
import argparse
import re
import sys

import h5py
import numpy as np

FORMAT, VERSION = "pfcr-checkpoint", "1.0"
ROOT_ATTRS = {  # name -> kind
    "format": str, "format_version": str, "stage": str, "round": int, "seed": int,
    "n_clients": int, "world_size_at_write": int, "software_version": str,
    "created_utc": str, "config_yaml": str,
}
CLIENT_ATTRS = {"domain": str, "shard": int, "n_train_rows": int, "rng_counter": int}
MODEL_KEYS = ("hidden_size", "inner_size", "n_layers", "code_dim", "code_cap",
              "MAX_ITEM_LIST_LENGTH")
# Defaults of src/io/config_schema.cpp, for configs that omit a key.
MODEL_DEFAULTS = {"hidden_size": 300, "inner_size": 256, "n_layers": 2, "code_dim": 32,
                  "code_cap": 256, "MAX_ITEM_LIST_LENGTH": 50}


def parse_model_sizes(text):
    """The model sizes from the stored config: PyYAML if installed, else the top-level
    `key: integer` lines (pfcr writes these keys unnested)."""
    try:
        import yaml
        doc = yaml.safe_load(text) or {}
        found = {k: doc[k] for k in MODEL_KEYS if k in doc}
    except ImportError:
        found = {}
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z_]+):\s*(-?\d+)\s*(#.*)?$", line)
            if m and m.group(1) in MODEL_KEYS:
                found[m.group(1)] = int(m.group(2))
    return {k: int(found.get(k, MODEL_DEFAULTS[k])) for k in MODEL_KEYS}


def expected_shape(name, s):
    """PyTorch shape of state_dict key `name` for the model sizes `s`; None if the name is not
    a PFCR encoder parameter (not checked); a string if it cannot belong to this model."""
    C, F, L = s["hidden_size"], s["inner_size"], s["n_layers"]
    fixed = {"pq_code_embedding.weight": (s["code_dim"] * (s["code_cap"] + 1), C),
             "position_embedding.weight": (s["MAX_ITEM_LIST_LENGTH"], C),
             "LayerNorm.weight": (C,), "LayerNorm.bias": (C,)}
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"trm_encoder\.layer\.(\d+)\.(.+)", name)
    if not m:
        return None
    if int(m.group(1)) >= L:
        return f"layer {m.group(1)} does not exist with n_layers = {L}"
    per_layer = {"feed_forward.dense_1.weight": (F, C), "feed_forward.dense_1.bias": (F,),
                 "feed_forward.dense_2.weight": (C, F), "feed_forward.dense_2.bias": (C,)}
    for proj in ("query", "key", "value", "dense"):
        per_layer[f"multi_head_attention.{proj}.weight"] = (C, C)
        per_layer[f"multi_head_attention.{proj}.bias"] = (C,)
    for ln in ("multi_head_attention.LayerNorm", "feed_forward.LayerNorm"):
        per_layer[ln + ".weight"] = (C,)
        per_layer[ln + ".bias"] = (C,)
    return per_layer.get(m.group(2), f"unknown encoder parameter '{m.group(2)}'")


def attr_kind(value):
    if isinstance(value, (str, bytes)):
        return str
    if isinstance(value, (int, np.integer)):
        return int
    return type(value)


def datasets(group):
    """Relative path -> dataset, recursively."""
    out = {}
    group.visititems(lambda name, obj: out.__setitem__(name, obj)
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def check_tensor(where, ds, problems, shape=None):
    if ds.dtype != np.float32:
        problems.append(f"{where}: dtype {ds.dtype}, expected float32")
        return
    if isinstance(shape, str):
        problems.append(f"{where}: {shape}")
    elif shape is not None and tuple(ds.shape) != tuple(shape):
        problems.append(f"{where}: shape {list(ds.shape)}, expected {list(shape)} from the config")
    if ds.size and not np.isfinite(ds[()]).all():
        problems.append(f"{where}: contains NaN or Inf")


def shape_for_client_path(path, sizes):
    """Expected shape of /clients/<id>/<path> by its state_dict key, or None."""
    # Tensor-name patterns of src/io/checkpoint_schema.hpp (ckpt::parameter_of).
    m = re.fullmatch(r"(?:model|best|control)/(.+)", path) or re.fullmatch(r"optim/(.+)/[mv]", path)
    return expected_shape(m.group(1), sizes) if m else None


def validate(path):
    """Returns (summary line, problems)."""
    problems = []
    with h5py.File(path, "r") as f:
        for name, kind in ROOT_ATTRS.items():
            if name not in f.attrs:
                problems.append(f"/: attribute '{name}' missing")
            elif attr_kind(f.attrs[name]) is not kind:
                problems.append(f"/: attribute '{name}' is {type(f.attrs[name]).__name__}, "
                                f"expected {kind.__name__}")
        if problems:
            return None, problems
        fmt, ver = f.attrs["format"], f.attrs["format_version"]
        if fmt != FORMAT:
            return None, [f"/: format '{fmt}', expected '{FORMAT}'"]
        if ver != VERSION:
            return None, [f"/: format_version '{ver}', expected '{VERSION}'"]
        if f.attrs["stage"] not in ("pretrain", "finetune"):
            problems.append(f"/: stage '{f.attrs['stage']}', expected 'pretrain' or 'finetune'")
        sizes = parse_model_sizes(f.attrs["config_yaml"])

        if "server" not in f or not isinstance(f["server"], h5py.Group):
            problems.append("/server: group missing")
            server = {}
        else:
            server = datasets(f["server"])
        for name, ds in sorted(server.items()):
            check_tensor(f"/server/{name}", ds, problems, expected_shape(name, sizes))

        clients = f.get("clients")
        if not isinstance(clients, h5py.Group):
            problems.append("/clients: group missing")
            clients = {}
        n_clients = int(f.attrs["n_clients"])
        if len(clients) != n_clients:
            problems.append(f"/clients: {len(clients)} clients, n_clients says {n_clients}")
        reference, n_tensors = None, 0
        for cid in sorted(clients, key=lambda s: (len(s), s)):
            g, where = clients[cid], f"/clients/{cid}"
            if not re.fullmatch(r"0|[1-9]\d*", cid) or not isinstance(g, h5py.Group):
                problems.append(f"{where}: not a client group named by a decimal id")
                continue
            for name, kind in CLIENT_ATTRS.items():
                if name not in g.attrs:
                    problems.append(f"{where}: attribute '{name}' missing")
                elif attr_kind(g.attrs[name]) is not kind:
                    problems.append(f"{where}: attribute '{name}' is not {kind.__name__}")
            if "optim" not in g or "step" not in g["optim"].attrs:
                problems.append(f"{where}/optim: attribute 'step' missing")
            tensors = datasets(g)
            n_tensors = len(tensors)
            if reference is None:
                reference = (cid, set(tensors))
            elif set(tensors) != reference[1]:
                missing = sorted(reference[1] - set(tensors))
                extra = sorted(set(tensors) - reference[1])
                problems.append(f"{where}: tensor set differs from client {reference[0]} "
                                f"(missing {missing[:3]}, extra {extra[:3]})")
            model = {p[len("model/"):]: ds for p, ds in tensors.items() if p.startswith("model/")}
            has_optim = any(p.startswith("optim/") for p in tensors)
            for name, ds in model.items():
                for moment in ("m", "v") if has_optim else ():
                    key = f"optim/{name}/{moment}"
                    if key not in tensors:
                        problems.append(f"{where}/{key}: Adam moment missing")
                    elif tensors[key].shape != ds.shape:
                        problems.append(f"{where}/{key}: shape {list(tensors[key].shape)}, "
                                        f"model tensor has {list(ds.shape)}")
            for p, ds in sorted(tensors.items()):
                check_tensor(f"{where}/{p}", ds, problems, shape_for_client_path(p, sizes))
        summary = (f"{path}: valid {FORMAT} {VERSION}, stage {f.attrs['stage']}, round "
                   f"{int(f.attrs['round'])}, {n_clients} clients, {len(server)} server and "
                   f"{n_tensors} client tensors, written by {int(f.attrs['world_size_at_write'])} "
                   f"ranks")
    return summary, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    args = ap.parse_args()
    try:
        summary, problems = validate(args.path)
    except OSError as e:  # missing file, not HDF5
        print(f"{args.path}: cannot open as HDF5: {e}")
        return 1
    for p in problems:
        print(f"{args.path}:{p}")
    if problems:
        print(f"{args.path}: INVALID ({len(problems)} problems)")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
