"""GhostNet recipe.

Han et al. 2020, Sec. 4.2 (ImageNet): SGD with momentum 0.9, initial lr 0.4 for batch 1024
(8 GPUs), cosine decay, weight decay 4e-5, dropout 0.2 before the classifier (the model's
default ``drop_rate``). The schedule details come from the authors: 5 warm-up epochs then
cosine (first author, iamhankai/ghostnet.pytorch issue #3: "we used 5 epochs of warmup and
cosine learning rate"), 400 epochs (issue #18; huawei-noah/ghostnet ``ghostnet_tensorflow/
main.py`` ``--epochs 400``), and from that official TF trainer: ``--weight_decay 4e-5``,
``--dropout_keep_prob 0.8``, ``--label_smoothing 0.1``, MomentumOptimizer with
``use_nesterov=True`` (fidelity audit 2026-12 §20).
Reported (Table 7) top-1: GhostNet 0.5× 66.2, 1.0× 73.9, 1.3× 75.7 (timm's ghostnet_100
weights: 73.97).
"""

RECIPES = {
    "ghostnet_*": dict(optimizer="sgd", learning_rate=0.4, lr_batch_denom=1024, batch_size=1024,
                       momentum=0.9, nesterov=True, weight_decay=4e-5, schedule="cosine",
                       warmup_epochs=5.0, num_epochs=400.0, label_smoothing=0.1,
                       train_crop="random_resized"),
}
