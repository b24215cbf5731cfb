"""Feature extraction: any registered model as a backbone returning its stage outputs.

:class:`FeatureExtractor` shares the wrapped model's variable scope, so its variables are
the classifier model's (a converted twin's ``from_torch`` output applies as it is), and
returns the maps that the family marks with :func:`flaxnets.layers.tap`. The forward pass
stops after the last requested map, so neither later stages nor the head are traced (and
``init`` creates only the variables up to that map, as timm's ``features_only`` does).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from flaxnets import layers


class FeatureExtractor(nn.Module):
    """The maps named ``taps`` of ``model``, in that order, as a list of NHWC arrays.

    Attributes:
      model: a registered model (built with ``num_classes=0``: no head).
      taps: ``FeatureInfo.module`` names to return.
    """

    model: nn.Module
    taps: tuple[str, ...]

    def setup(self) -> None:
        nn.share_scope(self, self.model)

    def __call__(self, x: jax.Array, train: bool = False) -> list[jax.Array]:
        with layers.collect_features(self.taps, stop=True) as got:
            try:
                self.model(x, train=train)
            except layers.StopForward:
                pass
        missing = [t for t in self.taps if t not in got]
        if missing:
            raise ValueError(f"{type(self.model).__name__} produced no feature map named {missing}")
        return [got[t] for t in self.taps]
