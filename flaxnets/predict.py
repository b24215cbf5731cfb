"""``python -m flaxnets.predict IMAGE... --arch=resnet50 [--weights=SOURCE] [--topk=5]``.

Prints the top-k ImageNet labels and probabilities of each image, after the eval transform of
the weights (:func:`flaxnets.transforms.transforms`). ``--weights`` is any source
:func:`flaxnets.load_weights` takes (a tag or a file); without it the model's twin default
weights are used (``torchvision`` or ``timm``). Bad input: one ``error:`` line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np


def predict(arch: str, images: Sequence[str], weights: str, topk: int = 5) -> list[list[tuple[int, str, float]]]:
    """Top-k (index, label, probability) per image path."""
    import jax
    from PIL import Image

    import flaxnets
    from flaxnets.transforms import imagenet_classes, transforms

    variables = flaxnets.load_weights(arch, weights)
    model = flaxnets.create_model(arch, num_classes=flaxnets.weights.classes_in(arch, variables))
    tf = transforms(arch)
    batch = []
    for path in images:
        try:
            with Image.open(path) as img:
                batch.append(tf(img))
        except (OSError, ValueError) as e:
            raise flaxnets.weights.WeightsError(f"cannot read image {path!r} ({e})") from None
    logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, np.stack(batch))
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    names = imagenet_classes()
    out = []
    for p in probs:
        idx = np.argsort(-p, kind="stable")[:topk]
        out.append([(int(i), names[i] if p.shape[0] == len(names) else str(i), float(p[i])) for i in idx])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flaxnets.predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, …)")
    parser.add_argument("--arch", required=True, help="registry name, e.g. resnet50")
    parser.add_argument("--weights", default=None, help="tag (torchvision[:TAG], timm[:TAG]) or weights file")
    parser.add_argument("--topk", type=int, default=5)
    args = parser.parse_args(argv)
    import flaxnets

    try:
        info = flaxnets.model_info(args.arch)
        source = args.weights or (info.twin.split(":")[0] if info.twin else None)
        if source is None:
            raise ValueError(f"{args.arch!r} has no twin with published weights: pass --weights=FILE")
        if args.topk < 1:
            raise ValueError(f"--topk must be >= 1, got {args.topk}")
        results = predict(args.arch, args.images, source, args.topk)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    for path, rows in zip(args.images, results, strict=True):
        print(path)
        for i, label, p in rows:
            print(f"  {p:8.4f}  {i:4d}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
