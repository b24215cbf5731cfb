"""GhostNet recipe.

Han et al. 2020, Sec. 4.2 (ImageNet): SGD with momentum 0.9, initial lr 0.4 for batch 1024
(8 GPUs), cosine decay, weight decay 4e-5, dropout 0.2 before the classifier (the model's
default ``drop_rate``). These values follow the paper's text as we recall it (it could
not be re-checked offline); the epoch budget is left to the dataset default.
Reported (Table 7) top-1: GhostNet 0.5× 66.2, 1.0× 73.9, 1.3× 75.7 (timm's ghostnet_100
weights: 73.97).
"""

RECIPES = {
    "ghostnet_*": dict(optimizer="sgd", learning_rate=0.4, lr_batch_denom=1024, batch_size=1024,
                       momentum=0.9, weight_decay=4e-5, schedule="cosine",
                       train_crop="random_resized"),
}
