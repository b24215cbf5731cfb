"""NASNet-A recipes (Zoph et al. 2018, Appendix A; TF-slim reference implementation).

The ImageNet models were trained with the TF-slim pipeline: RMSProp (decay 0.9, ε = 1.0,
momentum 0.9), label smoothing 0.1, an auxiliary classifier, dropout 0.5 before the
classifier (the models' default ``drop_rate``) and ScheduledDropPath (each cell path
dropped with a probability growing linearly over training; keep probability 0.7 for the
large model, off for the mobile one in the TF-slim configs). Weight decay: 5e-5 (large)
and 4e-5 (mobile), the TF-slim NASNet arg scopes; BatchNorm ε 1e-3 as in the models.
Learning rate, decay and length: TF-slim ``research/slim/nets/nasnet/nasnet.py`` training
notes, synchronous SGD. Large: batch 16 per replica, "learning rate: 0.015 * 100", 100
replicas → lr 1.5 at global batch 1600. Mobile: batch 32 per replica, "0.04 * 50", 50
replicas → lr 2.0 at 1600. Both: ×0.97 every 2.4 epochs, "clip global norm of all gradients
by 10", auxiliary head weight 0.4, ``total_training_steps=250000`` (250k × 1600 /
1,281,167 ≈ 312 epochs). Being synchronous, the rate scales linearly from 1600.
Not reproduced by the trainer/model: the auxiliary head and ScheduledDropPath.
Reported: NASNet-A (6 @ 4032) at 331×331 82.7 % top-1 / 96.2 % top-5 (Table 2);
NASNet-A (4 @ 1056) at 224×224 74.0 % / 91.6 % (Table 3).
"""

_COMMON = dict(optimizer="rmsprop", rmsprop_decay=0.9, rmsprop_eps=1.0, momentum=0.9,
               batch_size=1600, lr_batch_denom=1600, schedule="exponential", decay_rate=0.97,
               decay_epochs=2.4, label_smoothing=0.1, grad_clip_norm=10.0,
               num_epochs=float(round(250_000 * 1600 / 1_281_167)))

RECIPES = {
    "nasnetamobile": dict(_COMMON, learning_rate=2.0, weight_decay=4e-5),
    # timm's evaluation crop for the 331 model: 0.911.
    "nasnetalarge": dict(_COMMON, learning_rate=1.5, weight_decay=5e-5, eval_crop_ratio=0.911),
}
