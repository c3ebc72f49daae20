"""Turns a trained pysalient checkpoint into the fp16 weights file shipped inside the package.

    python tools/package_weights.py runs/train/exp/weights.pth sparseinst_r18_light_synthsis

writes ``pysalient/weights/<stem>-<first 8 hex digits of its sha256>.pth`` (floating tensors stored as float16,
the rest of the checkpoint unchanged) and prints the full sha256 to put in the registry's WeightsSpec.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import torch

from pysalient.engine.checkpoint import is_pysalient_checkpoint, read_checkpoint
from pysalient.utils.atomic import atomic_write_bytes

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "pysalient" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a pysalient checkpoint (weights.pth / last.pth of a training run)")
    parser.add_argument("stem", help="file name stem, e.g. sparseinst_r18_light_synthsis")
    args = parser.parse_args()
    checkpoint = read_checkpoint(args.checkpoint)
    if not is_pysalient_checkpoint(checkpoint):
        raise SystemExit(f"{args.checkpoint} is not a pysalient checkpoint")
    keep = ("format", "format_version", "family", "name", "config", "class_names", "state_dict")
    packaged = {key: checkpoint[key] for key in keep}
    packaged["state_dict"] = {
        key: value.half() if value.is_floating_point() else value for key, value in checkpoint["state_dict"].items()
    }
    buffer = io.BytesIO()
    torch.save(packaged, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    target = atomic_write_bytes(WEIGHTS_DIR / f"{args.stem}-{digest[:8]}.pth", data)
    print(f"{target} ({len(data) / 1e6:.2f} MB)\nsha256 {digest}")


if __name__ == "__main__":
    main()
