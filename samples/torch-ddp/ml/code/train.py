"""Distributed data parallel training of a linear model on the iris data, with gloo (CPU).

smhost's torch launcher starts one process per rank (sagemaker_torch_distributed_enabled, 2 processes per host
here) with the variables torchrun would set; nothing here knows about smhost.  Each rank trains on its own shard;
DDP averages the gradients, so every rank holds the same model.  Rank 0 saves it.
"""
import argparse
import csv
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=200)
parser.add_argument("--lr", type=float, default=0.5)
args = parser.parse_args()

dist.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from the launcher
rank, world = dist.get_rank(), dist.get_world_size()

with open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "iris.csv")) as f:
    rows = list(csv.reader(f))[1:]
x = torch.tensor([[float(v) for v in r[1:]] for r in rows])
y = torch.tensor([int(r[0]) for r in rows])
x = (x - x.mean(0)) / x.std(0)
xs, ys = x[rank::world], y[rank::world]  # this rank's shard

torch.manual_seed(0)
model = DDP(torch.nn.Linear(4, 3))
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    opt.zero_grad()
    loss = loss_fn(model(xs), ys)
    loss.backward()  # gradients are all-reduced across the ranks here
    opt.step()
    if epoch % 50 == 0 or epoch == args.epochs - 1:
        print(f"rank {rank}/{world} on {os.environ.get('SM_CURRENT_HOST')}: epoch {epoch} loss {loss.item():.4f}",
              flush=True)

with torch.no_grad():
    correct = torch.tensor([float((model(xs).argmax(1) == ys).sum())])
    total = torch.tensor([float(len(ys))])
dist.all_reduce(correct)
dist.all_reduce(total)
accuracy = (correct / total).item()
if rank == 0:
    torch.save(model.module.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"))
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "metrics.json"), "w") as f:
        json.dump({"accuracy": accuracy, "world_size": world}, f)
    print(f"train accuracy {accuracy:.3f} over {world} ranks")
dist.destroy_process_group()
