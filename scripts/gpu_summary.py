#!/usr/bin/env python3
"""The table of figures for scripts/gpu_check.sh: reads what the check wrote into OUT (tlc_bench.json,
torch_reference.json, e2e.tsv, torch_*.json) and the run folders it trained (RUNS, default /tmp), prints one
row per figure (tlc, reference, ratio, goal, met?) and writes OUT/figures.json. A figure whose inputs are
missing is listed as missing, never invented. Usage: gpu_summary.py OUT [--runs /tmp]"""
import argparse
import csv
import json
import os


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--runs", default="/tmp")
    a = ap.parse_args()
    out, runs = a.out, a.runs
    tlc = {f["name"]: f for f in (load_json(os.path.join(out, "tlc_bench.json")) or [])}
    # The GPU decoder's figures come from a second bench (--decode gpu), so that a failure there loses nothing else.
    for f in load_json(os.path.join(out, "tlc_bench_gpu_decode.json")) or []:
        if f["name"] in ("decode_resize_gpu", "first_pass_gpu_decode"):
            tlc[f["name"]] = f
    ref = load_json(os.path.join(out, "torch_reference.json")) or {}
    e2e = {}
    try:
        for row in csv.reader(open(os.path.join(out, "e2e.tsv")), delimiter="\t"):
            if len(row) == 3 and row[2] == "0":
                e2e[row[0]] = float(row[1])
    except OSError:
        pass
    torch_runs = {m: load_json(os.path.join(out, f"torch_{m}.json")) or {} for m in ("every-epoch", "cached", "finetune")}

    def history_ips(run, phase):
        try:
            rows = [r for r in csv.DictReader(open(os.path.join(runs, run, "history.csv"))) if r["phase"] == phase]
        except OSError:
            return None
        # The first epoch of a phase fills the caches; the steady epochs are the figure.
        rows = rows[1:] or rows
        return sum(float(r["images_per_second"]) for r in rows) / len(rows) if rows else None

    def test_acc(run):
        m = load_json(os.path.join(runs, run, "metrics.json")) or {}
        t = m.get("test") or {}
        return t.get("acc")

    def fig(name):
        return tlc[name]["value"] if name in tlc else None

    rows = []

    def row(name, ours, theirs, unit, goal, higher_is_better=True, note=""):
        ratio = None
        if ours is not None and theirs:
            ratio = ours / theirs if higher_is_better else theirs / ours
        met = None if ratio is None or goal is None else ratio >= goal
        rows.append({"figure": name, "tlc": ours, "reference": theirs, "ratio": ratio, "unit": unit, "goal": goal,
                     "met": met, "note": note})

    row("normalize f32 NCHW vs device copy", fig("normalize"), ref.get("copy_GBps"), "GB/s", 0.85)
    row("normalize f32 NCHW vs torch op chain", fig("normalize"), ref.get("torch_normalize_GBps"), "GB/s", 8.0)
    row("normalize bf16 CL vs device copy", fig("normalize_bf16_cl"), ref.get("copy_GBps"), "GB/s", 0.85)
    row("normalize bf16 CL vs torch op chain", fig("normalize_bf16_cl"), ref.get("torch_normalize_bf16_cl_GBps"), "GB/s", 8.0)
    row("VGG16-160 features bf16 CL vs eager", fig("backbone"), ref.get("backbone_bf16_cl_img_s"), "img/s", 1.0)
    row("first pass: JPEG files -> features", fig("first_pass"), 10000.0, "img/s", 1.0,
        note="reference = the 10,000 img/s goal; JPEGs decoded on the CPU threads")
    row("first pass, GPU decoding (nvJPEG)", fig("first_pass_gpu_decode"), 10000.0, "img/s", 1.0,
        note="reference = the 10,000 img/s goal; --decode gpu")
    row("decode+resize on the GPU vs torchvision decode_jpeg(cuda)", fig("decode_resize_gpu"),
        ref.get("torchvision_decode_resize_img_s"), "img/s", 1.0, note="from memory, batch B, same files")
    row("10 head epochs vs torch, backbone every epoch", e2e.get("tlc_head10_s"), e2e.get("torch_every-epoch_s"), "s", 6.0,
        higher_is_better=False, note="wall seconds of the whole job; ratio = torch / tlc")
    row("10 head epochs vs torch, cached features", e2e.get("tlc_head10_s"), e2e.get("torch_cached_s"), "s", 1.5,
        higher_is_better=False, note="wall seconds of the whole job; ratio = torch / tlc")
    row("fine-tune last 3 layers, no cache vs torch bf16 autocast", history_ips("run_ft_off", "fine-tune"),
        torch_runs["finetune"].get("finetune_img_s"), "img/s", 1.0,
        note="tlc: whole epochs from JPEG files, fp32 trained layers; torch: steps on a resident batch")
    row("fine-tune, prefix cache on vs off", history_ips("run_ft_auto", "fine-tune"), history_ips("run_ft_off", "fine-tune"),
        "img/s", 3.0)
    # CUDA graphs (opt-in, TLC_CUDA_GRAPHS=1) against the same bench without them; no goal until measured.
    graphs = {(g, bs): {f["name"]: f for f in load_json(os.path.join(out, f"tlc_bench_graphs{g}_b{bs}.json")) or []}
              for g in (1, 0) for bs in (1, 32)}
    for bs, name in ((1, "backbone"), (32, "backbone"), (32, "first_pass")):
        on, off = graphs[1, bs].get(name), graphs[0, bs].get(name)
        row(f"CUDA graphs: {name} at batch {bs}, with vs without", on and on["value"], off and off["value"], "img/s",
            None, note=on["detail"] if on else "")
    acc_b, acc_f = test_acc("run_acc_bf16"), test_acc("run_acc_fp32")
    gap = None if acc_b is None or acc_f is None else abs(acc_b - acc_f) * 100
    rows.append({"figure": "test accuracy bf16 vs fp32 (points apart)", "tlc": acc_b, "reference": acc_f, "ratio": gap,
                 "unit": "acc", "goal": 1.0, "met": None if gap is None else gap <= 1.0,
                 "note": "ratio column = |difference| in points; goal: within 1 point"})

    def f(v, w=12, p=1):
        return f"{'missing':>{w}s}" if v is None else f"{v:{w}.{p}f}"

    print(f"{'figure':58s} {'tlc':>12s} {'reference':>12s} {'ratio':>8s}  {'unit':6s} {'goal':>6s}  met")
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        prec = 4 if r["unit"] == "acc" else 1
        print(f"{r['figure']:58s} {f(r['tlc'], 12, prec)} {f(r['reference'], 12, prec)} {f(r['ratio'], 8, 2)}  "
              f"{r['unit']:6s} {f(r['goal'], 6, 2)}  {met}")
    if "decode_resize" in tlc:
        print(f"{'(info) decode+resize from memory, all cores':58s} {tlc['decode_resize']['value']:12.1f}")
    with open(os.path.join(out, "figures.json"), "w") as fjs:
        json.dump({"figures": rows, "tlc_bench": tlc, "torch_reference": ref, "e2e_seconds": e2e,
                   "torch_runs": torch_runs}, fjs, indent=2)


if __name__ == "__main__":
    main()
