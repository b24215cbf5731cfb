"""DarkNet-53 recipe.

The YOLOv3 paper (Redmon & Farhadi 2018, Sec. 2.4 and Table 2) reports 77.2 % top-1 /
93.8 % top-5 single crop at 256×256 but gives no ImageNet training details; they come
from the Darknet ImageNet classifier configuration the network was trained with: SGD
momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 with a 1000-iteration burn-in and a
polynomial decay (power 4) over 800k iterations (≈ 80 epochs), 256×256 training crops
with scale/aspect jitter, small rotations and hue/saturation/exposure jitter.
Approximations: the trainer has no polynomial schedule, so cosine decay is used (it ends
at 0 like poly-4 but decays more slowly early on), the burn-in is a 0.1-epoch linear
warm-up, and the crop jitter is the random-resized crop; rotations and colour jitter are
not reproduced.
"""

RECIPES = {
    "darknet53*": dict(optimizer="sgd", learning_rate=0.1, lr_batch_denom=128, batch_size=128,
                       momentum=0.9, nesterov=False, weight_decay=5e-4, num_epochs=80.0,
                       schedule="cosine", warmup_epochs=0.1, image_size=256,
                       train_crop="random_resized"),
}
