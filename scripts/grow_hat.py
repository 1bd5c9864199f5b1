"""Grow a trained HAT by residual groups, or by blocks at the end of its groups, that start as the
identity, so training the larger network starts from the smaller one's quality.

Builds ``network_g`` of the option file ``-opt`` (a HAT with more ``depths`` entries than the source,
or larger ones), loads every tensor of the self-describing ``--source`` file (``restoregen export`` /
the bundled weights) whose name and shape match, and zeroes the layer that ends each new residual
branch: the last convolution of a new residual group; in a new block, the attention's output
projection, the convolution branch's last convolution and the MLP's second layer. Each branch's
output is added to its input, so new groups and blocks pass features through unchanged. The new
layers' other weights are drawn with ``--seed``. Writes a BasicSR-layout ``.pth`` (``params`` and ``params_ema``)
for the option file's ``path.pretrain_network_g``.

    python scripts/grow_hat.py -opt options/train/default/train_restoregen_x4_large.yml \
        --source weights/restoregen_default_x4.safetensors --out experiments/init/restoregen_x4_large.pth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def group_depths(net) -> list[int]:
    """Blocks per residual group of a HAT."""
    return [len(layer.residual_group.blocks) for layer in net.layers]


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
    small_depths, large_depths = group_depths(small), group_depths(large)
    if len(large_depths) < len(small_depths) or large_depths == small_depths or any(
            big < depth for big, depth in zip(large_depths, small_depths, strict=False)):
        print(f"grow_hat: error: {args.opt}: network_g's depths {large_depths} do not extend "
              f"{args.source}'s {small_depths}", file=sys.stderr)
        return 2
    state = large.state_dict()
    source = small.state_dict()
    mismatched = [k for k, v in source.items() if k not in state or state[k].shape != v.shape]
    if mismatched:
        print(f"grow_hat: error: {args.source}: {len(mismatched)} tensors do not fit network_g, "
              f"first {mismatched[0]}", file=sys.stderr)
        return 2
    state.update(source)
    branch_ends = [f"layers.{group}.conv." for group in range(len(small_depths), len(large_depths))]
    for group, depth in enumerate(large_depths[:len(small_depths)]):
        for block in range(small_depths[group], depth):
            prefix = f"layers.{group}.residual_group.blocks.{block}."
            branch_ends += [prefix + "attn.proj.", prefix + "conv_block.cab.2.", prefix + "mlp.fc2."]
    for name in state:
        if name.startswith(tuple(branch_ends)):
            state[name] = torch.zeros_like(state[name])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": state, "params_ema": state}, args.out)
    print(f"wrote {args.out}: HAT with depths {large_depths} (grown from {small_depths} of {args.source}, "
          f"{sum(v.numel() for v in state.values()):,} values)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
