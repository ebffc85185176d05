#!/usr/bin/env python3
"""Train a small neural network on the handwritten digits data set.

Data: scikit-learn's bundled copy of the UCI "Optical Recognition of
Handwritten Digits" set (1,797 real 8x8 scans of digits 0-9, shipped inside
python3-sklearn, no download).  Task: classify the digit.  Model: a two-layer
perceptron in PyTorch.  Runs on CPU in a few seconds.

Writes $TETHER_OUTPUTS/model.pt and metrics.json (./outputs without Tether).
Checkpoints every epoch into $TETHER_CHECKPOINTS when set and resumes from the
latest one on start (see docs/checkpointing.md).
"""
import json
import os
import sys
import time

import torch
from sklearn.datasets import load_digits

EPOCHS = int(os.environ.get("EPOCHS", "8"))
BATCH = 64
SEED = 0


def data():
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    x, y = x[perm], y[perm]
    split = int(0.8 * len(x))
    return x[:split], y[:split], x[split:], y[split:]


def model():
    torch.manual_seed(SEED)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def latest_checkpoint(ckdir):
    if not ckdir or not os.path.isdir(ckdir):
        return None
    names = sorted(n for n in os.listdir(ckdir)
                   if n.startswith("epoch-") and n.endswith(".pt"))
    return os.path.join(ckdir, names[-1]) if names else None


def main():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out = os.environ.get("TETHER_OUTPUTS", "outputs")
    ckdir = os.environ.get("TETHER_CHECKPOINTS")
    os.makedirs(out, exist_ok=True)
    xtr, ytr, xte, yte = data()
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    lossf = torch.nn.CrossEntropyLoss()
    start = 1
    ck = latest_checkpoint(ckdir)
    if ck:
        state = torch.load(ck)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = state["epoch"] + 1
        print(f"resuming from {os.path.basename(ck)} at epoch {start}", flush=True)
    print(f"digits: {len(xtr)} train / {len(xte)} test images, {EPOCHS} epochs",
          flush=True)
    acc = 0.0
    for epoch in range(start, EPOCHS + 1):
        t0 = time.perf_counter()
        net.train()
        g = torch.Generator().manual_seed(SEED + epoch)
        order = torch.randperm(len(xtr), generator=g)
        total = 0.0
        for i in range(0, len(xtr), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            loss = lossf(net(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        rate = len(xtr) / (time.perf_counter() - t0)
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch}/{EPOCHS} loss {total / len(xtr):.4f} "
              f"accuracy {acc:.4f} samples/s {rate:.0f}", flush=True)
        # a point per series for Tether's charts (docs/metrics.md)
        print(f"TETHER_METRIC loss={total / len(xtr):.6g} accuracy={acc:.6g} "
              f"step={epoch}", flush=True)
        print(f"TETHER_PROGRESS step={epoch}", flush=True)
        if ckdir:
            os.makedirs(ckdir, exist_ok=True)
            tmp = os.path.join(ckdir, f".epoch-{epoch:04d}.pt.tmp")
            torch.save({"epoch": epoch, "model": net.state_dict(),
                        "optimizer": opt.state_dict()}, tmp)
            os.replace(tmp, os.path.join(ckdir, f"epoch-{epoch:04d}.pt"))
        if os.environ.get("EPOCH_SLEEP"):
            time.sleep(float(os.environ["EPOCH_SLEEP"]))
    torch.save(net.state_dict(), os.path.join(out, "model.pt"))
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"accuracy": acc, "epochs": EPOCHS, "dataset": "sklearn digits",
                   "test_images": len(xte)}, f)
    print(f"done: test accuracy {acc:.4f}; wrote model.pt and metrics.json",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
