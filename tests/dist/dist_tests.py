#!/usr/bin/env python3
"""Multi-process tests of tlc's data-parallel runs (ctest: Dist.*), on 127.0.0.1 with Gloo and the tiny backbone.

  dist_tests.py CASE --tlc build/tlc --probe build/tests/tlc_dist_probe --backbone models/tiny_cnn.pt

Each case starts its ranks itself (as torchrun or srun would: RANK/WORLD_SIZE/... or SLURM_* variables, with
MASTER_ADDR/MASTER_PORT on a free port), or through the venv's torchrun, and bounds every wait with a timeout
so that a hang fails the test instead of CI.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

WAIT = 120  # seconds any launched job may take before the test fails


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(root, classes=3, per_class=12, size=16, corrupt=True):
    rng = np.random.default_rng(7)
    for c in range(classes):
        d = os.path.join(root, f"class{c}")
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((size, size, 3), np.float32)
            base[..., c % 3] = 150 + 30 * (c // 3)
            img = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(os.path.join(d, f"{i:03d}.png"))
    if corrupt:
        with open(os.path.join(root, "class1", "broken.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n not really a png")


def rank_env(rank, world, port, slurm=False, extra=None):
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
              "SLURM_STEP_NUM_TASKS", "TORCHELASTIC_USE_AGENT_STORE"):
        env.pop(k, None)
    if slurm:
        env.update(SLURM_PROCID=str(rank), SLURM_NTASKS=str(world), SLURM_STEP_NUM_TASKS=str(world),
                   SLURM_LOCALID=str(rank), SLURM_TASKS_PER_NODE=str(world))
    else:
        env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    env.update(extra or {})
    return env


def start_ranks(cmds, world, slurm=False, extra=None, port=None):
    """Starts rank r with cmds[r] (a list) or cmds (the same for all); returns the Popen objects."""
    port = port or free_port()
    procs = []
    for r in range(world):
        cmd = cmds[r] if isinstance(cmds[0], list) else cmds
        procs.append(subprocess.Popen(cmd, env=rank_env(r, world, port, slurm, extra), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def finish(procs, timeout=WAIT):
    out = []
    deadline = time.time() + timeout
    for p in procs:
        try:
            o, _ = p.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"a rank did not finish within {timeout} s (hang?)")
        out.append(o)
    return [p.returncode for p in procs], out


def run_single(cmd, extra=None, timeout=WAIT):
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(k, None)
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra or {})
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return r.returncode, r.stdout


def check(cond, msg, *outputs):
    if not cond:
        for o in outputs:
            print("----- output -----\n" + o)
        raise AssertionError(msg)


def params(model_path):
    m = torch.jit.load(model_path, map_location="cpu")
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def same_model(a, b, tol=1e-5):
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys(), (sorted(pa), sorted(pb))
    worst = max(float((pa[k].float() - pb[k].float()).abs().max()) if pa[k].numel() else 0.0 for k in pa)
    print(f"largest parameter difference: {worst:.3g}")
    return worst <= tol


class Case:
    def __init__(self, args, tmp):
        self.a, self.tmp = args, tmp
        self.data = os.path.join(tmp, "data")
        make_data(self.data)

    def train(self, out, *flags, timeout="60", epochs="3", batch="8"):
        return [self.a.tlc, "train", self.data, "--backbone", self.a.backbone, "--out", os.path.join(self.tmp, out),
                "--image-size", "16", "--epochs", epochs, "--batch-size", batch, "--optimizer", "adam", "--lr", "0.01",
                "--val-split", "0.2", "--test-split", "0.2", "--device", "cpu", "--threads", "1", "--no-progress",
                "--dist-timeout", timeout, *flags]

    def path(self, *p):
        return os.path.join(self.tmp, *p)


def parity(c, flags, extra=None):
    rc, out1 = run_single(c.train("one", *flags))
    check(rc == 0, "the single-process run failed", out1)
    rcs, outs = finish(start_ranks(c.train("two", *flags), 2, extra=extra))
    check(rcs == [0, 0], f"the 2-rank run failed: {rcs}", *outs)
    check(same_model(c.path("one", "model.pt"), c.path("two", "model.pt")), "2 ranks trained another model", out1, *outs)
    for f in ("skipped_files.tsv", "splits.csv", "history.csv"):
        a, b = open(c.path("one", f)).read(), open(c.path("two", f)).read()
        if f == "history.csv":  # seconds and images/s differ; the metrics agree within float rounding
            ra = [l.split(",")[:7] for l in a.splitlines()]
            rb = [l.split(",")[:7] for l in b.splitlines()]
            close = len(ra) == len(rb) and all(
                x == y or (x.replace(".", "").replace("-", "").isdigit() and abs(float(x) - float(y)) <= 1e-4)
                for la, lb in zip(ra, rb) for x, y in zip(la, lb))
            check(close, "history.csv differs between 1 and 2 ranks", a, b)
            continue
        check(a == b, f"{f} differs between 1 and 2 ranks", a, b)
    check("broken.png" in open(c.path("two", "skipped_files.tsv")).read(), "the merged report lost the broken file")
    check(outs[1].strip() == "", "rank 1 printed more than errors", outs[1])
    return outs


def case_collectives(a, tmp):
    rcs, outs = finish(start_ranks([a.probe], 2))
    check(rcs == [0, 0], f"the collectives probe failed: {rcs}", *outs)
    check("all collectives ok" in outs[0] and "all collectives ok" in outs[1], "probe output", *outs)


def case_parity_head_and_finetune(a, tmp):
    c = Case(a, tmp)
    outs = parity(c, ["--fine-tune-layers", "2", "--fine-tune-epochs", "2", "--fine-tune-lr", "0.01"])
    check("test:" in outs[0], "rank 0 did not report the test score", outs[0])


def case_parity_uncached_flip_weights(a, tmp):
    c = Case(a, tmp)
    parity(c, ["--cache-features", "off", "--augment", "flip", "--class-weights", "auto", "--fine-tune-layers", "1",
               "--fine-tune-epochs", "1"])


def case_parity_augment_views(a, tmp):
    # A pool of K = 2 augmented views per image (each rank computes its block of every view; the prefix cache holds
    # them while fine-tuning), then fresh views (each rank augments its slice of a batch; the validation features
    # computed once): views are drawn from the image's pixels and the seed, so 2 ranks train what 1 process does.
    outs = parity(Case(a, os.path.join(tmp, "pool")), ["--augment", "light", "--augment-views", "2", "--fine-tune-layers",
                                                       "1", "--fine-tune-epochs", "1", "--fine-tune-lr", "0.01"])
    check("3 views (plain + 2 augmented)" in outs[0], "the 2 ranks did not cache the pool", outs[0])
    outs = parity(Case(a, os.path.join(tmp, "fresh")), ["--augment", "flip,rotate=20,zoom=1.2", "--fine-tune-layers", "1",
                                                        "--fine-tune-epochs", "1", "--fine-tune-lr", "0.01"])
    check("validation images only" in outs[0], "the 2 ranks did not cache the validation features", outs[0])


def case_parity_one_bucket_per_parameter(a, tmp):
    # Buckets of ~100 bytes: every parameter's gradient is all-reduced on its own while backward runs, in the
    # same order on every rank (the default 4 MB makes one bucket for the tiny net).
    c = Case(a, tmp)
    parity(c, ["--fine-tune-layers", "2", "--fine-tune-epochs", "2", "--fine-tune-lr", "0.01", "--hidden", "8"],
           extra={"TLC_GRAD_BUCKET_MB": "0.0001"})


def case_torchrun(a, tmp):
    c = Case(a, tmp)
    rc, out1 = run_single(c.train("one"))
    check(rc == 0, "the single-process run failed", out1)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    port = free_port()
    cmd = [torchrun, "--no-python", "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(port)] + c.train("two")
    rc, out = run_single(cmd, timeout=WAIT)
    check(rc == 0, "torchrun --nproc-per-node 2 failed", out)
    check(same_model(c.path("one", "model.pt"), c.path("two", "model.pt")), "torchrun's 2 ranks trained another model", out)


def case_slurm(a, tmp):
    c = Case(a, tmp)
    rc, out1 = run_single(c.train("one"))
    check(rc == 0, "the single-process run failed", out1)
    rcs, outs = finish(start_ranks(c.train("two"), 2, slurm=True))
    check(rcs == [0, 0], f"the srun-style run failed: {rcs}", *outs)
    check(same_model(c.path("one", "model.pt"), c.path("two", "model.pt")), "srun-style ranks trained another model")
    # An sbatch script's own environment (SLURM_PROCID=0, SLURM_NTASKS=4, no srun step) is one process.
    rc, out = run_single(c.train("batch"), extra={"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, timeout=60)
    check(rc == 0 and "distributed:" not in out, "an sbatch script's tlc must run as a single process", out)


def case_resume_across_world_sizes(a, tmp):
    c = Case(a, tmp)
    ft = ["--fine-tune-layers", "2", "--fine-tune-epochs", "2", "--fine-tune-lr", "0.01"]
    rc, out = run_single(c.train("ref", *ft))
    check(rc == 0, "reference run failed", out)
    # 2 ranks stopped after 5 steps (in epoch 2), resumed by 1 process.
    rcs, outs = finish(start_ranks(c.train("a", *ft), 2, extra={"TLC_INTERRUPT_AFTER_STEPS": "5"}))
    check(rcs == [130, 130], f"the interrupted 2-rank run should exit 130 on both ranks: {rcs}", *outs)
    check(os.path.exists(c.path("a", "checkpoint.pt")), "no checkpoint after the interruption", *outs)
    rc, out = run_single([a.tlc, "train", "--resume", c.path("a"), "--no-progress"])
    check(rc == 0, "resuming the 2-rank run with 1 process failed", out)
    check(same_model(c.path("ref", "model.pt"), c.path("a", "model.pt")), "2 ranks -> 1 process: another model", out)
    # 1 process stopped in the fine-tuning phase, resumed by 2 ranks.
    rc, out = run_single(c.train("b", *ft), extra={"TLC_INTERRUPT_AFTER_STEPS": "13"})
    check(rc == 130, "the interrupted single run should exit 130", out)
    rcs, outs = finish(start_ranks([a.tlc, "train", "--resume", c.path("b"), "--no-progress", "--dist-timeout", "60"], 2))
    check(rcs == [0, 0], f"resuming with 2 ranks failed: {rcs}", *outs)
    check(same_model(c.path("ref", "model.pt"), c.path("b", "model.pt")), "1 process -> 2 ranks: another model", *outs)


def case_fingerprint_mismatch(a, tmp):
    c = Case(a, tmp)
    other = c.path("other")
    shutil.copytree(c.data, other)
    os.remove(os.path.join(other, "class2", "005.png"))
    cmd0 = c.train("run")
    cmd1 = list(cmd0)
    cmd1[2] = other
    t0 = time.time()
    rcs, outs = finish(start_ranks([cmd0, cmd1], 2), timeout=60)
    check(rcs[0] != 0 and rcs[1] != 0, f"both ranks must stop: {rcs}", *outs)
    check("rank 1 sees other data than rank 0" in outs[0], "rank 0's message must name rank 1", *outs)
    check(outs[1].startswith("tlc: rank 1: error:"), "rank 1's error must carry its rank", *outs)
    check(not os.path.exists(c.path("run", "model.pt")), "a model was written")
    print(f"stopped in {time.time() - t0:.1f} s")


def start_long_run_and_wait_for_checkpoint(c):
    """Starts 2 ranks on a run slow enough to be stopped mid-way (decoding on every step, many epochs) and
    returns their processes once the first checkpoint is there (a failure, with the ranks killed, if none comes)."""
    procs = start_ranks(c.train("run", "--cache-features", "off", epochs="100000", batch="2"), 2)
    deadline = time.time() + WAIT
    while not os.path.exists(c.path("run", "checkpoint.pt")):
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            check(False, "no checkpoint appeared", *finish(procs)[1])
        time.sleep(0.2)
    return procs


def case_killed_rank(a, tmp):
    c = Case(a, tmp)
    procs = start_long_run_and_wait_for_checkpoint(c)
    time.sleep(0.5)
    procs[1].send_signal(signal.SIGKILL)
    t0 = time.time()
    rcs, outs = finish(procs, timeout=60)
    took = time.time() - t0
    check(rcs[0] not in (0, None), f"rank 0 must fail: {rcs}", *outs)
    check("lost rank 1" in outs[0], "rank 0's message must name the lost rank", *outs)
    check(took < 40, f"rank 0 took {took:.1f} s to stop", *outs)
    check(os.path.exists(c.path("run", "checkpoint.pt")), "the last checkpoint is gone", *outs)
    torch.jit.load(c.path("run", "checkpoint.pt"), map_location="cpu")  # intact: it loads
    print(f"rank 0 stopped {took:.1f} s after rank 1 was killed:\n{outs[0].strip().splitlines()[-1]}")


def case_sigint_all(a, tmp):
    c = Case(a, tmp)
    procs = start_long_run_and_wait_for_checkpoint(c)
    for p in procs:
        p.send_signal(signal.SIGINT)
    rcs, outs = finish(procs, timeout=60)
    check(rcs == [130, 130], f"both ranks must exit 130: {rcs}", *outs)
    check("tlc train --resume" in outs[0], "rank 0 must say how to continue", *outs)
    check(os.path.exists(c.path("run", "checkpoint.pt")), "no checkpoint", *outs)


def case_unreachable_master(a, tmp):
    c = Case(a, tmp)
    port = free_port()  # nothing listens there
    t0 = time.time()
    p = subprocess.run(c.train("run", timeout="3"), env=rank_env(1, 2, port), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    took = time.time() - t0
    check(p.returncode != 0, "a rank that cannot reach the store must fail", p.stdout)
    check("could not reach the rendezvous store at 127.0.0.1:" in p.stdout, "the message must name the address", p.stdout)
    check(took < 30, f"took {took:.1f} s with --dist-timeout 3", p.stdout)
    print(p.stdout.strip())


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--tlc", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--backbone", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tlc-dist-")
    try:
        CASES[args.case](args, tmp)
        print("ok")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
