"""Reading pfcr run directories (`pfcr run --set output_dir=DIR`) for the analysis scripts:
results.json, finetune/ and pretrain/ metrics.jsonl, config.resolved.yaml; the paper's method
names, order and labels. Standard library only. It does not aggregate or plot anything.

Method of a run = the run directory's name without its `-s<seed>` suffix (`pfcr-full-s2` ->
`pfcr-full`, the names of configs/paper/matrix.txt). For the paper's method names the run's
own results.json fields (algorithm, shared, privacy, mode) must agree with the name.
"""
import json
import os
import re

METRICS = [("recall@10", "R@10"), ("ndcg@10", "N@10"), ("recall@50", "R@50"), ("ndcg@50", "N@50")]

# Rows of the paper's table (docs/METHOD.md §10), in order: name -> (label, fields results.json must have).
PAPER_METHODS = [
    ("local", "Local only", {"algorithm": "local"}),
    ("centralized", "Centralized", {"algorithm": "centralized"}),
    ("fedavg-table", "FedAvg (code table)", {"algorithm": "fedavg", "shared": "table"}),
    ("fedavg-whole", "FedAvg (whole model)", {"algorithm": "fedavg", "shared": "whole"}),
    ("fedprox", "FedProx", {"algorithm": "fedprox"}),
    ("scaffold", "SCAFFOLD", {"algorithm": "scaffold"}),
    ("pfcr-full", "PFCR + full fine-tune",
     {"algorithm": "pfcr", "mode": "full", "privacy": "none"}),
    ("pfcr-prompt-full", "PFCR + prompt-full",
     {"algorithm": "pfcr", "mode": "prompt-full", "privacy": "none"}),
    ("pfcr-prompt-light", "PFCR + prompt-light",
     {"algorithm": "pfcr", "mode": "prompt-light", "privacy": "none"}),
    ("pfcr-ldp-reference", "PFCR + LDP (paper's arithmetic)",
     {"algorithm": "pfcr", "privacy": "pfcr-reference"}),
    ("pfcr-ldp-rr", "PFCR + LDP (randomized response)",
     {"algorithm": "pfcr", "privacy": "randomized-response"}),
]
LABELS = {name: label for name, label, _ in PAPER_METHODS}
EXPECTED = {name: fields for name, _, fields in PAPER_METHODS}
ORDER = {name: i for i, (name, _, _) in enumerate(PAPER_METHODS)}


class RunError(Exception):
    """A run directory that cannot be read; the message names the file."""


def method_of(run_dir):
    """(method, seed or None) from the run directory's name: `<method>-s<seed>`."""
    name = os.path.basename(os.path.normpath(run_dir))
    m = re.fullmatch(r"(.+)-s(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


def method_key(method):
    """Sort key: the paper's order first, then other methods alphabetically with numbers in
    numeric order (`pfcr-ldp-rr-eps3` before `pfcr-ldp-rr-eps10`), ties by the plain name."""
    parts = re.split(r"(\d+(?:\.\d+)?)", method)
    natural = tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)
    return (ORDER.get(method, len(ORDER)), natural, method)


def color_of(method, others):
    """A fixed colour per paper method (same in every figure); `others` = the sorted list of
    non-paper methods, which take the colours after them."""
    import matplotlib.pyplot as plt
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20").colors[1::2])
    i = ORDER[method] if method in ORDER else len(ORDER) + others.index(method)
    return palette[i % len(palette)]


def label_of(method):
    return LABELS.get(method, method)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path}: not found") from None
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: invalid JSON ({e})") from None
    except OSError as e:
        raise RunError(f"{path}: {e.strerror}") from None


def _number(path, where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RunError(f"{path}: {where} is {value!r}, not a number")
    return float(value)


def load_results(run_dir, name="results.json"):
    """results.json of a run, checked: every domain's test/popularity_test and mean_test hold
    the four metrics as numbers, and the fields the run name implies match. Adds `_path`,
    `_method`, `_seed`. Another `name` (a `pfcr evaluate --json` file of the run, same shape)
    is read the same way except that popularity_test and the method fields are optional."""
    path = os.path.join(run_dir, name)
    full = name == "results.json"
    r = load_json(path)
    if not isinstance(r, dict):
        raise RunError(f"{path}: not a JSON object")
    for key in ("domains", "mean_test"):
        if key not in r:
            raise RunError(f"{path}: missing '{key}'")
    if not isinstance(r["domains"], dict) or not r["domains"]:
        raise RunError(f"{path}: 'domains' is empty or not an object")
    for d, v in r["domains"].items():
        for part in ("test", "popularity_test"):
            if not full and part != "test" and isinstance(v, dict) and part not in v:
                continue
            if not isinstance(v, dict) or not isinstance(v.get(part), dict):
                raise RunError(f"{path}: domains.{d}: missing '{part}'")
            for m, _ in METRICS:
                _number(path, f"domains.{d}.{part}.{m}", v[part].get(m))
    for m, _ in METRICS:
        _number(path, f"mean_test.{m}", r["mean_test"].get(m) if isinstance(r["mean_test"], dict)
                else None)
    method, seed = method_of(run_dir)
    for field, want in EXPECTED.get(method, {}).items():
        if (full or field in r) and r.get(field) != want:
            raise RunError(f"{path}: the run name says method '{method}' but {field} is "
                           f"{r.get(field)!r}, not {want!r}")
    r["_path"], r["_method"] = path, method
    r["_seed"] = seed if seed is not None else r.get("seed")
    return r


def read_jsonl(path):
    """Every line of a metrics.jsonl as a dict; errors name the file and line."""
    rows = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise RunError(f"{path}:{n}: invalid JSON ({e})") from None
    except FileNotFoundError:
        raise RunError(f"{path}: not found") from None
    return rows


def _strip_comment(line):
    """Drop a `# ...` comment that is outside double quotes."""
    quoted = escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text):
    text = text.strip()
    if text in ("", "~", "null"):
        return None
    try:
        return json.loads(text)  # quoted strings, numbers (1e-05), true/false, [..] flow lists
    except json.JSONDecodeError:
        return text


def read_resolved_config(path):
    """config.resolved.yaml (pfcr's own output: block mappings indented by 2 spaces, JSON-like
    scalars and flow lists, `# origin` comments) as a nested dict. Not a general YAML reader."""
    root = {}
    stack = [(-1, root)]
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise RunError(f"{path}: not found") from None
    for n, raw in enumerate(lines, 1):
        line = _strip_comment(raw.rstrip("\n")).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        key, sep, value = line.strip().partition(":")
        if not sep:
            raise RunError(f"{path}:{n}: expected 'key: value'")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip():
            parent[key] = _scalar(value)
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
    return root


def config_get(cfg, dotted, default=None):
    """cfg['a']['b'] for 'a.b' (or the dotted key itself at the top level)."""
    if dotted in cfg:
        return cfg[dotted]
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
