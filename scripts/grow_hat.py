"""Grow a trained HAT by residual groups that start as the identity, so training the larger network
starts from the smaller one's quality.

Builds ``network_g`` of the option file ``-opt`` (a HAT with more ``depths`` than the source), loads
every tensor of the self-describing ``--source`` file (``restoregen export`` / the bundled weights)
whose name and shape match, and zeroes the last convolution of each new residual group (its output
is added to its input, so the group passes features through unchanged). The new blocks' other
weights are drawn with ``--seed``. Writes a BasicSR-layout ``.pth`` (``params`` and ``params_ema``)
for the option file's ``path.pretrain_network_g``.

    python scripts/grow_hat.py -opt options/train/default/train_restoregen_x4_large.yml \
        --source weights/restoregen_default_x4.safetensors --out experiments/init/restoregen_x4_large.pth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    import torch

    from restoregen.config import OptionError, load_options
    from restoregen.train.export import load_exported
    from restoregen.train.networks import build_network

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-opt", required=True, help="option file whose network_g is the grown HAT")
    parser.add_argument("--source", required=True, type=Path, help="self-describing .safetensors of the smaller HAT")
    parser.add_argument("--out", required=True, type=Path, help="the .pth to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        opt = load_options(args.opt)
    except OptionError as error:
        print(f"grow_hat: error: {error}", file=sys.stderr)
        return 2
    if opt["network_g"]["type"] != "HAT":
        print(f"grow_hat: error: {args.opt}: network_g.type is {opt['network_g']['type']}, not HAT", file=sys.stderr)
        return 2
    try:
        small, _ = load_exported(args.source)
    except Exception as error:  # a missing file, safetensors' own error types, missing metadata
        print(f"grow_hat: error: {args.source}: not a self-describing restoregen .safetensors file ({error})",
              file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    large = build_network(opt, "network_g")
    if len(large.layers) <= len(small.layers):
        print(f"grow_hat: error: {args.opt}: network_g has {len(large.layers)} residual groups, "
              f"{args.source} already {len(small.layers)}", file=sys.stderr)
        return 2
    state = large.state_dict()
    source = small.state_dict()
    mismatched = [k for k, v in source.items() if k not in state or state[k].shape != v.shape]
    if mismatched:
        print(f"grow_hat: error: {args.source}: {len(mismatched)} tensors do not fit network_g, "
              f"first {mismatched[0]}", file=sys.stderr)
        return 2
    state.update(source)
    for group in range(len(small.layers), len(large.layers)):
        for name in (f"layers.{group}.conv.weight", f"layers.{group}.conv.bias"):
            state[name] = torch.zeros_like(state[name])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": state, "params_ema": state}, args.out)
    print(f"wrote {args.out}: HAT with {len(large.layers)} residual groups ({len(small.layers)} from {args.source}, "
          f"{sum(v.numel() for v in state.values()):,} values)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
