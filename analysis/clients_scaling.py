#!/usr/bin/env python3
"""The client-count scaling study's table and plot, from the runs jobs/scaling.sbatch wrote in
mode `clients` (one `pfcr run` per point, directory ``clients-<N>-r<R>`` with ``.err`` and
``.time`` and ``.ckpt`` beside it).

Per point: pre-training seconds per round (mean over rounds of local train + aggregate +
communicate + server, max over ranks; checkpoint apart) and the aggregation share of it
(aggregate + communicate + server); fine-tuning seconds per epoch (the stage's wall time
without its checkpoint write, divided by the most epochs any client ran); peak RSS per rank
(the largest of pfcr's own reports and /usr/bin/time's); client state per client (what
pre-training clients hold after the last round, and the dense bound); checkpoint sizes and
write times of both stages. Writes OUT.csv and OUT.md (standard library) and OUT.png (if
matplotlib is there).

Usage: clients_scaling.py RUN_DIR... -o OUT      (e.g. -o runs/clients/clients)
"""
import argparse
import csv
import glob
import json
import os
import re
import sys

COLUMNS = ("clients", "ranks", "clients_per_rank", "pretrain_s_per_round", "aggregation_share",
           "finetune_s_per_epoch", "finetune_epochs", "peak_rss_mib_per_rank",
           "client_state_mib", "client_state_dense_mib", "pretrain_ckpt_gb", "pretrain_ckpt_write_s",
           "finetune_ckpt_gb", "finetune_ckpt_write_s", "total_s")


def seconds(text):
    """pfcr's duration_text ("42s", "14m02s", "1h03m") -> seconds."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not m or not any(m.groups()):
        raise ValueError(text)
    h, mi, s = (int(g or 0) for g in m.groups())
    return 3600 * h + 60 * mi + s


def read_run(path):
    name = os.path.basename(os.path.normpath(path))
    m = re.fullmatch(r"clients-(\d+)-r(\d+)", name)
    if not m:
        sys.exit(f"{path}: expected a directory named clients-<N>-r<R>")
    n, r = int(m.group(1)), int(m.group(2))
    rounds = [json.loads(line) for line in open(os.path.join(path, "pretrain", "metrics.jsonl"))]
    rounds = [d for d in rounds if d.get("event") == "round"]
    if not rounds:
        sys.exit(f"{path}: no pre-training rounds in pretrain/metrics.jsonl")
    phase = lambda d: sum(d["time"][k] for k in ("local_train", "aggregate", "communicate", "server"))
    per_round = sum(phase(d) for d in rounds) / len(rounds)
    agg = sum(d["time"]["aggregate"] + d["time"]["communicate"] + d["time"]["server"]
              for d in rounds) / len(rounds)
    timing = json.load(open(os.path.join(path, "timing.json")))["time_s"]
    tests = [json.loads(line) for line in open(os.path.join(path, "finetune", "metrics.jsonl"))]
    epochs = max(d["epochs_run"] for d in tests if d.get("event") == "test")
    err = open(path.rstrip("/") + ".err").read()
    ft_write = [seconds(x) for x in re.findall(r"finetune: checkpoint \S+ \(\d+ clients\) in (\S+);", err)]
    ft_write_s = max(ft_write) if ft_write else 0.0
    peaks = [float(x) for x in re.findall(r"peak RSS ([\d.]+) MiB/rank", err)]
    peaks += [float(x) for x in re.findall(r"\(peak (\d+)\)", err)]
    time_file = path.rstrip("/") + ".time"
    if os.path.exists(time_file):
        kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(time_file).read())
        if kb:
            peaks.append(int(kb.group(1)) / 1024)
    state = re.search(r"client state ([\d.]+) MiB per client, peak RSS", err)
    dense = re.search(r"client state at most ([\d.]+) MiB per client", err)
    recorded = {}  # the job's .ckpt file (it deletes the checkpoints), else the files themselves
    if os.path.exists(path.rstrip("/") + ".ckpt"):
        for line in open(path.rstrip("/") + ".ckpt"):
            words = line.split()
            if len(words) == 2:
                recorded[words[0]] = int(words[1]) / 1e9

    def size(pattern):
        stage = pattern.split("/")[0]
        if stage in recorded:
            return recorded[stage]
        return max((os.path.getsize(p) for p in glob.glob(os.path.join(path, pattern))),
                   default=0) / 1e9
    return {
        "clients": n, "ranks": r, "clients_per_rank": round(n / r, 1),
        "pretrain_s_per_round": round(per_round, 2),
        "aggregation_share": round(agg / per_round, 4) if per_round > 0 else 0,
        "finetune_s_per_epoch": round((timing["finetune"] - ft_write_s) / max(epochs, 1), 2),
        "finetune_epochs": epochs,
        "peak_rss_mib_per_rank": round(max(peaks), 0) if peaks else "",
        "client_state_mib": float(state.group(1)) if state else "",
        "client_state_dense_mib": float(dense.group(1)) if dense else "",
        "pretrain_ckpt_gb": round(size("pretrain/ckpt/round_*.h5"), 3),
        "pretrain_ckpt_write_s": round(rounds[-1]["time"]["checkpoint"], 2),
        "finetune_ckpt_gb": round(size("finetune/ckpt/round_*.h5"), 3),
        "finetune_ckpt_write_s": ft_write_s,
        "total_s": round(sum(timing.values()), 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("-o", "--out", required=True, help="output prefix: OUT.csv, OUT.md, OUT.png")
    a = ap.parse_args()
    rows = sorted((read_run(p) for p in a.runs), key=lambda x: (x["ranks"], x["clients"]))
    with open(a.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    heads = ("clients", "ranks", "pre-train s/round", "aggregation share", "fine-tune s/epoch",
             "peak RSS/rank (MiB)", "client state (MiB, dense bound)", "pretrain ckpt (GB, write s)",
             "finetune ckpt (GB, write s)", "total s")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---:|" * len(heads)]
    for x in rows:
        lines.append("| " + " | ".join(str(v) for v in (
            x["clients"], x["ranks"], x["pretrain_s_per_round"],
            f"{100 * x['aggregation_share']:.1f} %", x["finetune_s_per_epoch"],
            x["peak_rss_mib_per_rank"], f"{x['client_state_mib']} ({x['client_state_dense_mib']})",
            f"{x['pretrain_ckpt_gb']} ({x['pretrain_ckpt_write_s']})",
            f"{x['finetune_ckpt_gb']} ({x['finetune_ckpt_write_s']})", x["total_s"])) + " |")
    open(a.out + ".md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("clients_scaling: matplotlib missing, no plot (python3-matplotlib)", file=sys.stderr)
        return
    top = max(x["ranks"] for x in rows)
    pts = [x for x in rows if x["ranks"] == top]
    n = [x["clients"] for x in pts]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ax[0].plot(n, [x["pretrain_s_per_round"] for x in pts], "o-", label="pre-training s/round")
    ax[0].plot(n, [x["finetune_s_per_epoch"] for x in pts], "s-", label="fine-tuning s/epoch")
    ax[0].set_ylabel("seconds")
    ax[1].plot(n, [x["peak_rss_mib_per_rank"] / 1024 for x in pts], "o-", label="peak RSS per rank")
    ax[1].plot(n, [x["clients"] * x["client_state_mib"] / top / 1024 for x in pts], "s--",
               label="client states per rank")
    ax[1].set_ylabel("GiB")
    ax[2].plot(n, [x["pretrain_ckpt_gb"] for x in pts], "o-", label="pre-training checkpoint")
    ax[2].plot(n, [x["finetune_ckpt_gb"] for x in pts], "s-", label="fine-tuning checkpoint")
    ax[2].set_ylabel("GB")
    for a_ in ax:
        a_.set_xscale("log", base=2)
        a_.set_yscale("log")
        a_.set_xlabel(f"domain clients ({top} ranks)")
        a_.grid(True, which="both", alpha=0.3)
        a_.legend(fontsize=8)
    fig.suptitle("pfcr run: client-count scaling (synthetic domains, paper model size)")
    fig.tight_layout()
    fig.savefig(a.out + ".png", dpi=120)
    print(f"clients_scaling: {a.out}.csv, {a.out}.md, {a.out}.png")


if __name__ == "__main__":
    main()
