"""The reference users would otherwise write: the paper's SRResNet and a plain
PyTorch training loop (eager, Adam, NCHW or channels_last).

    pip install -e '.[bench]'          # torch==2.13.0 (CPU build)
    python benchmarks/torch_reference.py [--loss=gram] [--steps=5]

Same architecture as ``gramjax.models.SRResNet`` (9x9 first conv, 16
residual blocks of two 3x3 convs at 64 channels, LeakyReLU(0.2), two conv +
pixel-shuffle x2 stages, two 9x9 heads for the mean and log-variance), the
same step (LR made from the uint8 HR batch by antialiased bicubic
downscaling and rounded to 8-bit levels, HR in [-1, 1], the pixel loss,
Adam(0.9, 0.99)) and the same batch (16 x 96 x 96). ``benchmarks/
bench_train.py`` starts this file with ``--serve`` and times it against the
JAX step in the same run; run alone it prints its own ms/step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F


class Block(nn.Module):

  def __init__(self, ch: int, slope: float):
    super().__init__()
    self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
    self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
    self.slope = slope

  def forward(self, x):
    return x + self.conv2(F.leaky_relu(self.conv1(x), self.slope))


class SRResNet(nn.Module):
  """x4; input (N, 3, h, w) in [0, 1]; returns (mean, log_var) at 4x."""

  def __init__(self, num_blocks: int = 16, ch: int = 64, slope: float = 0.2,
               first_kernel: int = 9, head_kernel: int = 9):
    super().__init__()
    self.slope = slope
    self.first = nn.Conv2d(3, ch, first_kernel, padding=first_kernel // 2)
    self.blocks = nn.Sequential(*[Block(ch, slope) for _ in range(num_blocks)])
    self.trunk_out = nn.Conv2d(ch, ch, 3, padding=1)
    self.up = nn.ModuleList([nn.Conv2d(ch, 4 * ch, 3, padding=1)
                             for _ in range(2)])
    self.mean_head = nn.Conv2d(ch, 3, head_kernel, padding=head_kernel // 2)
    self.log_var_head = nn.Conv2d(ch, 3, head_kernel,
                                  padding=head_kernel // 2)
    nn.init.zeros_(self.log_var_head.weight)
    nn.init.zeros_(self.log_var_head.bias)

  def forward(self, lr):
    x = F.leaky_relu(self.first(lr), self.slope)
    x = self.trunk_out(self.blocks(x)) + x
    for conv in self.up:
      x = F.leaky_relu(F.pixel_shuffle(conv(x), 2), self.slope)
    return self.mean_head(x), self.log_var_head(x)


def pixel_loss(name: str, mean, log_var, target):
  """Per-pixel losses as in gramjax.core.losses ([-1, 1] units)."""
  if name == 'mse':
    return (target - mean) ** 2
  nll = 0.5 * torch.exp(-log_var) * (target - mean) ** 2 + 0.5 * log_var
  if name in ('nll', 'mle'):
    return nll
  if name in ('gram', 'gram_vjp'):
    return torch.sigmoid(log_var).detach() * nll
  raise ValueError(f'torch reference: no loss {name!r}')


def make_step(loss: str, *, batch: int = 16, crop: int = 96,
              channels_last: bool = True, device: str = 'cpu', seed: int = 0,
              num_blocks: int = 16, channels: int = 64):
  """Returns ``step()``: one training step on a fixed random uint8 batch."""
  torch.manual_seed(seed)
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  model = SRResNet(num_blocks, channels).to(device).to(memory_format=fmt)
  opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
  gen = torch.Generator().manual_seed(seed)
  hr_u8 = torch.randint(0, 256, (batch, 3, crop, crop), dtype=torch.uint8,
                        generator=gen).to(device).to(memory_format=fmt)

  def step():
    hr = hr_u8.float()
    lr = F.interpolate(hr / 255.0, scale_factor=0.25, mode='bicubic',
                       antialias=True, align_corners=False)
    lr = torch.round(lr.clamp(0, 1) * 255.0) / 255.0
    target = hr / 127.5 - 1.0
    mean, log_var = model(lr.contiguous(memory_format=fmt))
    value = pixel_loss(loss, mean, log_var, target).mean()
    opt.zero_grad(set_to_none=True)
    value.backward()
    opt.step()
    return value

  return step


def sync(device: str):
  if device.startswith('cuda'):
    torch.cuda.synchronize()


def serve(args):
  """Worker for bench_train.py: warms up every loss, prints 'ready', then
  answers each stdin line 'LOSS N' with the seconds N steps took."""
  steps = {}
  for loss in args.losses.split(','):
    steps[loss] = make_step(loss, batch=args.batch, crop=args.crop,
                            channels_last=args.channels_last,
                            device=args.device)
    for _ in range(2):
      steps[loss]()
    sync(args.device)
  print(json.dumps({'ready': True, 'torch': torch.__version__,
                    'threads': torch.get_num_threads()}), flush=True)
  for line in sys.stdin:
    loss, n = line.split()
    start = time.perf_counter()
    for _ in range(int(n)):
      steps[loss]()
    sync(args.device)
    print(time.perf_counter() - start, flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--loss', default='gram')
  p.add_argument('--losses', default='mse,gram', help='with --serve')
  p.add_argument('--steps', type=int, default=5)
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--crop', type=int, default=96)
  p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                 else 'cpu')
  p.add_argument('--channels_last', action=argparse.BooleanOptionalAction,
                 default=True)
  p.add_argument('--serve', action='store_true')
  args = p.parse_args()
  if args.device.startswith('cuda'):
    torch.backends.cudnn.benchmark = True
  if args.serve:
    serve(args)
    return
  step = make_step(args.loss, batch=args.batch, crop=args.crop,
                   channels_last=args.channels_last, device=args.device)
  for _ in range(2):
    step()
  sync(args.device)
  start = time.perf_counter()
  for _ in range(args.steps):
    step()
  sync(args.device)
  ms = 1e3 * (time.perf_counter() - start) / args.steps
  print(f'torch {torch.__version__} {args.device} '
        f'{"channels_last" if args.channels_last else "NCHW"} {args.loss}: '
        f'{ms:.1f} ms/step, {args.batch * 1e3 / ms:.2f} images/s')


if __name__ == '__main__':
  main()
