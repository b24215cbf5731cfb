"""DarkNet-53 recipe.

The YOLOv3 paper (Redmon & Farhadi 2018, Sec. 2.4 and Table 2) reports 77.2 % top-1 /
93.8 % top-5 single crop at 256×256 but gives no ImageNet training details; they come
from the Darknet ImageNet classifier configuration the network was trained with: SGD
momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 with a 1000-iteration burn-in and a
polynomial decay (power 4) over 800k iterations (≈ 80 epochs), 256×256 training crops
with scale/aspect jitter, small rotations and hue/saturation/exposure jitter.
(``cfg/darknet53.cfg`` of pjreddie/darknet: ``burn_in=1000``, ``policy=poly``, ``power=4``,
``max_batches=800000``). The decay is the ``poly`` schedule with power 4 over the post-warm-up
steps. Approximations: Darknet's burn-in ramps as (t/1000)^4 and its poly counts from step 0;
here the burn-in is a 0.1-epoch linear warm-up followed by poly-4 over the remaining steps,
and the crop jitter is the random-resized crop; rotations and colour jitter are not
reproduced. Evaluation: ``validate_classifier_single`` (examples/classifier.c) resizes the
full central square to 256 (``center_crop_image``): crop ratio 1.0.
"""

RECIPES = {
    "darknet53*": dict(optimizer="sgd", learning_rate=0.1, lr_batch_denom=128, batch_size=128,
                       momentum=0.9, nesterov=False, weight_decay=5e-4, num_epochs=80.0,
                       schedule="poly", poly_power=4.0, warmup_epochs=0.1, image_size=256,
                       train_crop="random_resized", eval_crop_ratio=1.0),
}
