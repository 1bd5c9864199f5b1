"""Export trained weights (a BasicSR-layout ``.pth`` from ``restoregen train``) to a
self-describing safetensors file (see ``restoregen.train.export``).

    python scripts/export_weights.py -opt options/train/default/train_default_HAT_SRx4.yml \
        --checkpoint experiments/default_HAT_SRx4/models/net_g_latest.pth \
        --out weights/restoregen_default_x4.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    from restoregen.config import OptionError, load_options
    from restoregen.train.export import export_weights

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-opt", required=True, help="the option file the weights were trained with")
    parser.add_argument("--checkpoint", required=True, type=Path, help="models/net_g_<iter>.pth")
    parser.add_argument("--key", default="params_ema", help="params or params_ema (default)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    try:
        opt = load_options(args.opt)
    except OptionError as error:
        print(f"export_weights: error: {error}", file=sys.stderr)
        return 2
    if not args.checkpoint.is_file():
        print(f"export_weights: error: {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    info = export_weights(opt["network_g"], args.checkpoint, args.out, param_key=args.key,
                          source=Path(args.opt).name, trained_checkpoint=args.checkpoint.name)
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.1f} MiB): {info['arch']} x{info['scale']} from {args.checkpoint} "
          f"[{info['param_key']}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
