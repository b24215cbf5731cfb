"""Default training configuration: every field the trainer reads, with its meaning.

Use as ``--config=train/configs/default.py`` and override any field on the command line
with ``--config.<field>=value``. The arch's paper recipe (``train/configs/recipes/``) is
applied on top of these defaults before command-line overrides; the dataset fills in
image size, classes and epoch budget where a field is left at ``None``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # What to train.
    c.arch = "resnet20"  # any flaxnets registry name
    c.dataset = ""  # "" → imagenet2012 if prepared in data_dir, else the embedded digits
    c.data_dir = ml_collections.FieldReference(None, field_type=str)  # TFDS data dir
    c.image_size = ml_collections.FieldReference(None, field_type=int)  # None → dataset/model
    c.num_classes = ml_collections.FieldReference(None, field_type=int)  # None → dataset
    # The side to train at on small-image data (digits, MNIST, CIFAR) where the smallest one the
    # model allows cripples it (a recipe sets it and says why, e.g. SqueezeNet's); 0 → that smallest.
    c.small_data_image_size = 0
    # The fewest epochs to train on a dataset the recipe is not written for, where the trainer's floor
    # for the recipe's home data (train/configs MIN_BUDGET_EPOCHS) is too few for it, even above that
    # dataset's default epochs (a recipe sets it and says why, e.g. the plain VGGs' 25,
    # fractalnet20_cifar's 80); 0 → that floor.
    c.small_data_min_epochs = 0.0
    c.model_overrides = ml_collections.ConfigDict()  # constructor fields, e.g. drop_rate
    # Constructor fields a recipe sets only when it is adapted to a dataset other than its own
    # (train/configs/__init__.py, adapt_recipe); explicit model_overrides.NAME still win.
    c.adapted_model_overrides = ml_collections.ConfigDict()
    c.recipe = True  # apply the arch's paper recipe before command-line overrides

    # Batch and length.
    c.batch_size = 128  # global batch
    c.num_epochs = ml_collections.FieldReference(None, field_type=float)  # None → dataset budget
    c.steps_per_epoch = ml_collections.FieldReference(None, field_type=int)  # None → from split
    c.max_steps = ml_collections.FieldReference(None, field_type=int)  # stop early (smoke runs)

    # Optimiser (optax).
    c.optimizer = "sgd"  # "sgd" | "rmsprop" | "adamw" | "sdlm" (LeNet-5: stochastic diagonal Levenberg-Marquardt)
    c.learning_rate = 0.1  # at batch size lr_batch_denom (scaled linearly with batch_size)
    c.lr_batch_denom = 256  # lr = learning_rate * batch_size / lr_batch_denom; 0 → no scaling
    c.momentum = 0.9
    c.nesterov = False
    c.rmsprop_decay = 0.9
    c.rmsprop_eps = 1.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.weight_decay = 1e-4  # L2 (sgd/rmsprop) or decoupled (adamw)
    c.decay_bn_and_bias = False  # False → no weight decay on BatchNorm params and biases
    # Decay of depthwise conv kernels (shape (kh, kw, 1, C)); None → weight_decay (MobileNet v1: 0).
    c.depthwise_weight_decay = ml_collections.FieldReference(None, field_type=float)
    c.grad_clip_norm = 0.0  # 0 → no clipping
    # "global": one norm over every gradient (Pascanu et al. 2013; NASNet's notes); "per_tensor":
    # each parameter's gradient by its own norm (TF-slim create_train_op's clip_gradient_norm).
    c.grad_clip_mode = "global"
    # ("PATTERN=RADIUS", ...): after each step, conv filters of matching layers whose RMS exceeds
    # the radius are scaled back onto it (ZFNet, Zeiler & Fergus 2014 Sec. 3); () → off.
    c.filter_rms_radius = ()

    # Schedule.
    c.schedule = "cosine"  # "cosine" | "linear" | "poly" | "step" | "exponential" | "constant" | "plateau"
    c.warmup_epochs = 0.0
    c.step_epochs = (30.0, 60.0, 80.0)  # "step": epochs (or fractions ≤ 1 of num_epochs)
    c.step_factor = 0.1  # "step" and "plateau": lr × step_factor at each drop
    # "plateau": drop when the epoch's mean training loss has not improved for plateau_patience
    # epochs (≤ 1: that fraction of the run), at most plateau_drops times (train.optim).
    c.plateau_patience = 0.1
    c.plateau_drops = 3
    c.decay_rate = 0.94  # "exponential": lr × decay_rate every decay_epochs
    c.decay_epochs = 2.0
    c.poly_power = 1.0  # "poly": peak·(1 − t/T)^poly_power after warmup (1 → "linear")

    # Loss.
    c.label_smoothing = 0.0
    c.aux_loss_weight = ml_collections.FieldReference(None, field_type=float)  # None → model's

    # Augmentation (train) and evaluation.
    c.train_crop = "random_resized"  # "random_resized" | "scale_jitter" | "pad_crop" | "center"
    c.crop_area_range = (0.08, 1.0)
    c.aspect_ratio_range = (3.0 / 4.0, 4.0 / 3.0)
    # random_resized crops: plain bilinear resize, as the flax ImageNet example (tf.image.resize,
    # antialias off); True → antialiased like PIL/torchvision, ~2.5× the resize cost.
    c.train_resize_antialias = False
    c.scale_jitter_range = (256, 512)  # VGG: shorter side S ∈ [256, 512]
    c.pad_crop_padding = 4  # CIFAR pad-4-crop
    c.random_flip = True
    c.pca_lighting = 0.0  # AlexNet PCA lighting σ (0.1 in the paper); 0 → off
    c.color_jitter = 0.0  # photometric distortion strength; 0 → off
    c.auto_augment = ""  # "" | "autoaugment" (ImageNet policy) | "autoaugment_svhn" | "randaugment"; after crop/flip
    c.randaugment_num_ops = 2  # RandAugment N
    c.randaugment_magnitude = 9.0  # RandAugment M on the 0–10 scale
    c.eval_crop_ratio = 0.875  # resize shorter side to size/ratio, centre crop
    c.eval_modes = ("center",)  # at the end: "center", "10crop", "multiscale", "dense", "144crop",
    # "multicrop150", or several joined by "+" (softmax averaged, e.g. "dense+multicrop150")
    c.multiscale_sizes = ()  # VGG Q ∈ {S−32, S, S+32}; () → derived from image_size
    c.shuffle_buffer = 10_000  # streamed splits only (TFRecords > 1 GiB: imagenet2012); others: full permutation
    c.eval_batch_size = ml_collections.FieldReference(None, field_type=int)  # None → batch_size
    # Eval batches per evaluation (periodic and final); None → the whole eval split (smoke runs).
    c.steps_per_eval = ml_collections.FieldReference(None, field_type=int)

    # Parallelism and precision.
    c.parallel = "jit"  # "jit" (mesh, data axis) | "pmap"
    c.compute_dtype = "auto"  # "auto" → bfloat16 on gpu/tpu, float32 on cpu
    # XLA:CPU's YNNPACK fusions for the train step (jit mode; flaxnets.layers.train_compiler_options):
    # "auto" (the families measured faster with them), "on", "off".
    c.cpu_ynn_fusions = "auto"
    c.seed = 0

    # Logging and checkpoints.
    c.log_every_steps = 50
    c.eval_every_epochs = 1
    c.checkpoint_every_steps = 1000
    # After training: "" (off), "auto" (WORKDIR/<arch>.safetensors) or a path; a flaxnets
    # weights file (flaxnets.load_weights reads it, no orbax state needed).
    c.export_weights = ""
    c.keep_checkpoints = 3
    c.keep_best = True  # also keep the checkpoint with the best periodic eval top-1 (orbax BestN)
    # Persistent XLA compilation cache: "auto" (user cache dir, ~/.cache/flaxnets/jax), a path, "" (off).
    c.compilation_cache = "auto"

    # Warm start / fine-tuning (train/warmstart.py). Ignored when the workdir resumes.
    c.init_from = ""  # weights tag/file (flaxnets.load_weights) or another run's workdir
    c.init_checkpoint = "latest"  # from a workdir: "latest", "best" or a step number
    c.init_arch = ""  # arch a torch state_dict source is keyed for ("" → the run's arch)
    c.init_ema = True  # from a run that kept an EMA, start from its EMA weights
    c.init_map = ()  # ("SRC=DST", ...) module-path renames; "GLOB=" drops (see VGG_FROM_A)
    c.init_strict = False  # any tensor left random or unused is an error
    c.freeze = ()  # parameter-path globs: no updates, no weight decay, their BatchNorms in inference mode
    c.lr_mult = ()  # ("PATTERN=FACTOR", ...) learning-rate factors, e.g. ("classifier*=10",)
    # Learning-rate factor of the classifier's class-logit layers (train/optim.py head_multipliers),
    # times any lr_mult. 1 = as the recipe; an SGD recipe on fewer classes than it was written for
    # gets C/C_home (train/configs adapt_recipe).
    c.head_lr_mult = 1.0
    # The last N epochs (≤ 1: that fraction of the run): every BatchNorm in inference mode, scale/bias fixed.
    c.bn_freeze_epochs = 0.0
    # PreciseBN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", Sec. 3; pycls
    # BN.NUM_SAMPLES_PRECISE = 8192): before every evaluation and the last checkpoint, the
    # BatchNorm running averages are replaced by the population statistics of this many training
    # images (at most one epoch) through the network as evaluated. 0 → off (running averages).
    c.precise_bn_samples = 0

    # Weight averaging: EMA of params and BatchNorm statistics, evaluated beside the raw weights.
    c.ema_decay = 0.0  # 0 → off (EfficientNet / MobileNet v2 reference code: 0.9999)
    c.ema_warmup = "tf"  # "tf": min(d, (1+t)/(10+t)); "timm": min(d, 1-(1+t)^-power); "none"
    c.ema_warmup_power = 0.75  # "timm" warm-up power (timm ModelEmaV3: 3/4 for shorter runs)
    c.tensorboard = True  # TensorBoard scalars in workdir/tensorboard (plus workdir/metrics.jsonl)
    return c
