"""A PyTorch training job for the image test (SMHOST_IMAGE_TORCH=1): fits y = 3x + 1 on the CPU, saves the
weights, and fails when the fit is off."""
import argparse
import os

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=300)
args = parser.parse_args()

torch.manual_seed(0)
x = torch.linspace(-1, 1, 64).unsqueeze(1)
y = 3 * x + 1
model = torch.nn.Linear(1, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(args.epochs):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
w, b = model.weight.item(), model.bias.item()
print(f"torch {torch.__version__}: w={w:.4f} b={b:.4f} loss={loss.item():.2e}")
if abs(w - 3) > 1e-2 or abs(b - 1) > 1e-2:
    raise SystemExit(f"fit is off: w={w} b={b}")
torch.save(model.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"))
