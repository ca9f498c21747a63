"""Named hyper-parameter presets: one per method of the library.

A preset is a partial :class:`~latent_distill.config.DistillationConfig`; ``config_for_method``
fills a config from a preset and user overrides. Method names are ``<representation>-<objective>``
(``latent-dm``, ``pixel-dm``, ...; ``ld3m-dm`` etc. for the ``"diffusion"`` representation), the
names used by ``examples/distill.py --method``.
"""

from __future__ import annotations

from typing import Any

from .config import DistillationConfig
from .registry import Registry

DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"

PRESETS: Registry[dict[str, Any]] = Registry("method", "register_preset(name, **config_fields)")
get_preset = PRESETS.get
list_presets = PRESETS.names


def register_preset(name: str, **values: Any) -> None:
    """Adds a named preset (a partial config).

    Args:
        name: the method name (``<representation>-<objective>`` by convention).
        **values: :class:`~latent_distill.config.DistillationConfig` fields.

    Raises:
        KeyError: when ``name`` is already registered.
    """
    PRESETS.add(name, values)


#: config fields whose overrides update the preset's dict key by key instead of replacing it.
MERGED_FIELDS = ("network_kwargs", "objective_kwargs", "representation_kwargs")


def config_for_method(name: str, **overrides: Any) -> DistillationConfig:
    """Builds the config of a named method, with ``overrides`` (``None`` values are ignored).

    ``network_kwargs``, ``objective_kwargs`` and ``representation_kwargs`` overrides update the
    preset's dicts key by key, so ``objective_kwargs={"num_experts": 2}`` keeps the preset's other
    objective options.

    Raises:
        KeyError: for an unknown method name, listing the known ones.
    """
    preset = get_preset(name)
    values = {**preset, **{key: value for key, value in overrides.items() if value is not None}}
    for key in MERGED_FIELDS:
        if key in preset or overrides.get(key) is not None:
            values[key] = {**preset.get(key, {}), **(overrides.get(key) or {})}
    return DistillationConfig.from_dict({"preset": name, **values})


# LatentDM (Dataset Distillation in Latent Space, Algorithm 2 and Table 6): real-latent init, a
# fresh random ConvNet per iteration, learning rate scaled by latents per class (Eq. 10). Latents are
# unit-variance, so the base rate is that of pixel DM scaled by the latent/pixel value ratio.
register_preset("latent-dm", representation="latent", objective="dm", iterations=1000, learning_rate=0.1,
                scale_learning_rate=True, momentum=0.5, batch_real=256, init="real", augmentation=None)

# DM (Zhao & Bilen 2023): learning rate 1 on normalised images, DSA inside matching, 20k iterations
# in the original; fewer by default here for CPU runs (set iterations to reproduce).
register_preset("pixel-dm", representation="pixel", objective="dm", iterations=1000, learning_rate=1.0,
                scale_learning_rate=False, momentum=0.5, batch_real=256, init="real", augmentation=DSA_STRATEGY)

# LatentDC (Dataset Distillation in Latent Space, Algorithm 1 and Table 6): IDC-style gradient
# matching (MSE distance, network trained on real latents), M = 10 outer loops, N = 50 network steps,
# model lr 0.01, eta_base 0.05 scaled by latents per class (Eq. 10), batch 64, no augmentation,
# 1000 iterations.
register_preset("latent-dc", representation="latent", objective="dc", iterations=1000, learning_rate=0.05,
                scale_learning_rate=True, momentum=0.5, batch_real=64, init="real", augmentation=None,
                objective_kwargs={"outer_loops": 10, "inner_steps": 50, "network_lr": 0.01, "distance": "mse",
                                  "train_network_on": "real", "batch_train": 64})

# DC (Zhao et al. 2021): layer-wise cosine distance, network trained on the synthetic set, outer/inner
# loops by IPC (None: DC's table, IPC 1/10/20/30/40/50), lr_img 0.1, lr_net 0.01, noise init, no
# augmentation, 1000 iterations.
_DC_ORIGINAL = {"outer_loops": None, "inner_steps": None, "network_lr": 0.01, "distance": "dc",
                "train_network_on": "synthetic", "batch_train": 256}
register_preset("pixel-dc", representation="pixel", objective="dc", iterations=1000, learning_rate=0.1,
                scale_learning_rate=False, momentum=0.5, batch_real=256, init="noise", augmentation=None,
                objective_kwargs=dict(_DC_ORIGINAL))

# DSA (Zhao & Bilen 2021): DC with siamese augmentation inside matching and network training, real init.
register_preset("pixel-dsa", representation="pixel", objective="dc", iterations=1000, learning_rate=0.1,
                scale_learning_rate=False, momentum=0.5, batch_real=256, init="real", augmentation=DSA_STRATEGY,
                objective_kwargs=dict(_DC_ORIGINAL))

# LatentMTT (Dataset Distillation in Latent Space, Algorithm 3 and Table 6, row 256 / IPC 10 /
# f = 4): T+ = 5, M = 1 expert epoch, N = 80 student steps, initial student lr 0.01, lambda = 1e-6,
# eta_base 10 scaled by latents per class (Eq. 10), synthetic batch 64, no augmentation, 5000
# iterations. Experts: MTT's recipe (SGD lr 0.01, batch 256) for the epochs the matching reads; 10
# experts instead of MTT's 100 so the buffer trains in minutes on a CPU.
register_preset("latent-mtt", representation="latent", objective="mtt", iterations=5000, learning_rate=10.0,
                scale_learning_rate=True, momentum=0.5, init="real", augmentation=None,
                objective_kwargs={"num_experts": 10, "expert_epochs": 1, "syn_steps": 80, "max_start_epoch": 5,
                                  "lr_teacher": 0.01, "lr_lr": 1e-6, "batch_syn": 64})

# MTT (Cazenavette et al. 2022, distill.py defaults): M = 3, N = 20, T+ = 25, lr_img 1000, lr_lr 1e-5,
# initial student lr 0.01, whole synthetic set per step, DSA, 50-epoch experts. 1000 iterations
# instead of 5000 and 10 experts instead of 100 for CPU runs (set them to reproduce).
register_preset("pixel-mtt", representation="pixel", objective="mtt", iterations=1000, learning_rate=1000.0,
                scale_learning_rate=False, momentum=0.5, init="real", augmentation=DSA_STRATEGY,
                objective_kwargs={"num_experts": 10, "expert_epochs": 3, "syn_steps": 20, "max_start_epoch": 25,
                                  "buffer_epochs": 50, "lr_teacher": 0.01, "lr_lr": 1e-5, "batch_syn": None})

# LD3M (Moser et al., Latent Dataset Distillation with Diffusion Models): the synthetic set is
# learnable initial latents and class embeddings of the pipeline's class-conditional DiT, rendered by
# K = 10 skip-connected DDIM steps (the paper's Eq. 7 form, no guidance) and decoded; the objectives
# run on the decoded images with DSA, real-image init, SGD momentum 0.5 with one learning rate for
# latents and embeddings.
# LD3M runs 10,000 iterations; 200 by default here for CPU runs (every iteration renders the whole
# set twice through the denoiser; set iterations to reproduce).
_LD3M = dict(representation="diffusion", iterations=200, scale_learning_rate=False, momentum=0.5, batch_real=256,
             init="real", augmentation=DSA_STRATEGY,
             representation_kwargs={"num_steps": 10, "skip": "paper", "guidance_scale": 1.0})

# LD3M-DM: lr_w 1, a fresh random ConvNet per iteration, 256 real images per class.
register_preset("ld3m-dm", objective="dm", learning_rate=1.0, **_LD3M)

# LD3M-DC: lr_w 0.1, DC's per-channel cosine distance, outer_loop = inner_loop = 1 (one match per
# fresh network, so it is never trained), network lr 0.01.
register_preset("ld3m-dc", objective="dc", learning_rate=0.1, **_LD3M,
                objective_kwargs={**_DC_ORIGINAL, "outer_loops": 1, "inner_steps": 1})

# LD3M-MTT: lr_w 1000, syn_steps 10, expert_epochs 2, max_start_epoch 2, lr_lr 1e-6, initial student
# lr 0.01, whole synthetic set per step, TESLA-style constant-memory student gradients. 10 experts
# (instead of 100) trained for exactly the 3 epochs the matching reads, for CPU runs.
register_preset("ld3m-mtt", objective="mtt", learning_rate=1000.0, **_LD3M,
                objective_kwargs={"num_experts": 10, "expert_epochs": 2, "syn_steps": 10, "max_start_epoch": 2,
                                  "lr_teacher": 0.01, "lr_lr": 1e-6, "batch_syn": None, "memory": "tesla"})
