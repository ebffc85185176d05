#!/usr/bin/env python3
"""examples/digits trained by several nodes at once: DistributedDataParallel
on the gloo backend (CPU), one process per node by default.

Same data, split, network and optimizer as examples/digits/train.py.  Each
global batch of 64 images is split between the ranks (rank r takes every
world_size-th image of it: its shard); DistributedDataParallel averages the
gradients, so every rank holds the same weights after every step, and the
run follows the one-node run closely.

Tether gives every rank MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK
(docs/multi-node.md); torch.distributed reads them (init_method env://).
Every rank prints its final loss (the training loss of the last epoch over
all ranks, so the same number everywhere); rank 0 writes model.pt and
metrics.json to $TETHER_OUTPUTS.
"""
import datetime
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits

EPOCHS = int(os.environ.get("EPOCHS", "8"))
BATCH = 64  # global: split between the ranks
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


def main():
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://",
                            timeout=datetime.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    out = os.environ.get("TETHER_OUTPUTS", "outputs")
    xtr, ytr, xte, yte = data()
    net = torch.nn.parallel.DistributedDataParallel(model())
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    lossf = torch.nn.CrossEntropyLoss()
    print(f"rank {rank} of {world} (node {os.environ.get('NODE_RANK')}, "
          f"master {os.environ.get('MASTER_ADDR')}:"
          f"{os.environ.get('MASTER_PORT')}): {len(xtr)} train / "
          f"{len(xte)} test images, {EPOCHS} epochs", flush=True)
    acc, final = 0.0, 0.0
    for epoch in range(1, EPOCHS + 1):
        t0 = time.perf_counter()
        net.train()
        g = torch.Generator().manual_seed(SEED + epoch)
        order = torch.randperm(len(xtr), generator=g)
        total = torch.zeros(1)
        for i in range(0, len(xtr), BATCH):
            idx = order[i:i + BATCH][rank::world]  # this rank's shard
            opt.zero_grad()
            loss = lossf(net(xtr[idx]), ytr[idx])
            loss.backward()  # DDP averages the gradients of all ranks
            opt.step()
            total += loss.detach() * len(idx)
        dist.all_reduce(total)  # the loss over every rank's images
        final = total.item() / len(xtr)
        rate = len(xtr) / (time.perf_counter() - t0)
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        if rank == 0:
            print(f"epoch {epoch}/{EPOCHS} loss {final:.4f} accuracy "
                  f"{acc:.4f} samples/s {rate:.0f}", flush=True)
            print(f"TETHER_METRIC loss={final:.6g} accuracy={acc:.6g} "
                  f"step={epoch}", flush=True)
            print(f"TETHER_PROGRESS step={epoch}", flush=True)
    print(f"rank {rank}: final loss {final:.6f}", flush=True)
    if rank == 0:
        os.makedirs(out, exist_ok=True)
        torch.save(net.module.state_dict(), os.path.join(out, "model.pt"))
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump({"accuracy": acc, "final_loss": final, "epochs": EPOCHS,
                       "world_size": world, "dataset": "sklearn digits",
                       "test_images": len(xte)}, f)
        print(f"done: test accuracy {acc:.4f}; wrote model.pt and "
              "metrics.json", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
