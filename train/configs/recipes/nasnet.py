"""NASNet-A recipes (Zoph et al. 2018, Appendix A; TF-slim reference implementation).

The ImageNet models were trained with the TF-slim pipeline: RMSProp (decay 0.9, ε = 1.0,
momentum 0.9), label smoothing 0.1, an auxiliary classifier, dropout 0.5 before the
classifier (the models' default ``drop_rate``) and ScheduledDropPath (each cell path
dropped with a probability growing linearly over training; keep probability 0.7 for the
large model, off for the mobile one in the TF-slim configs). Weight decay: 5e-5 (large)
and 4e-5 (mobile), the TF-slim NASNet arg scopes; BatchNorm ε 1e-3 as in the models.
Caveat: the initial learning rate and its decay could not be checked against the paper
offline; the values below (0.045 at batch 256, ×0.94 every 2 epochs) are the TF-slim
Inception defaults and are an assumption. Not reproduced by the trainer/model: the
auxiliary head and ScheduledDropPath.
Reported: NASNet-A (6 @ 4032) at 331×331 82.7 % top-1 / 96.2 % top-5 (Table 2);
NASNet-A (4 @ 1056) at 224×224 74.0 % / 91.6 % (Table 3).
"""

_COMMON = dict(optimizer="rmsprop", rmsprop_decay=0.9, rmsprop_eps=1.0, momentum=0.9,
               learning_rate=0.045, lr_batch_denom=256, schedule="exponential", decay_rate=0.94,
               decay_epochs=2.0, label_smoothing=0.1)

RECIPES = {
    "nasnetamobile": dict(_COMMON, weight_decay=4e-5),
    # timm's evaluation crop for the 331 model: 0.911.
    "nasnetalarge": dict(_COMMON, weight_decay=5e-5, eval_crop_ratio=0.911),
}
