"""Tests of differentiable siamese augmentation and CutMix."""

import pytest
import torch
import torch.nn.functional as F

from latent_distill.augment import (
    DEFAULT_DSA_STRATEGY,
    DSA_CUTMIX_STRATEGY,
    AugmentationError,
    DifferentiableSiameseAugmentation,
    DSAParams,
    cutmix,
    list_augmentations,
    parse_strategy,
)

IMAGE_OPS = [name for name in list_augmentations() if name != "cutmix"]



def _images(n=6, c=3, size=12, seed=0):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_default_parameters_follow_dsa():
    params = DSAParams()
    assert (params.flip_prob, params.scale_ratio, params.rotate_degrees, params.crop_pad) == (0.5, 1.2, 15.0, 0.125)
    assert (params.cutout_ratio, params.brightness, params.saturation, params.contrast) == (0.5, 1.0, 2.0, 0.5)
    assert DSAParams.from_dict(params.to_dict()) == params


@pytest.mark.parametrize("mode", ["single", "all"])
def test_same_seed_same_output_different_seed_different(mode):
    dsa = DifferentiableSiameseAugmentation(mode=mode)
    x = _images()
    torch.testing.assert_close(dsa(x, seed=7), dsa(x, seed=7), rtol=0, atol=0)
    outputs = [dsa(x, seed=seed) for seed in range(6)]
    assert any(not torch.equal(outputs[0], other) for other in outputs[1:])


def test_seeded_batches_of_different_sizes_share_the_transformation():
    dsa = DifferentiableSiameseAugmentation(mode="all")
    real, synthetic = _images(n=8), _images(n=3)
    both = torch.cat([synthetic, real])
    for seed in range(5):
        torch.testing.assert_close(dsa(synthetic, seed=seed), dsa(both, seed=seed)[:3])


def test_per_sample_seeded_parameters():
    dsa = DifferentiableSiameseAugmentation("scale_rotate", mode="all")
    x = _images(n=1).expand(5, -1, -1, -1).contiguous()
    a = dsa(x, seed=3, per_sample=True)
    torch.testing.assert_close(a, dsa(x, seed=3, per_sample=True), rtol=0, atol=0)
    assert not torch.allclose(a[0], a[1])  # every position has its own parameters
    shared = dsa(x, seed=3)
    torch.testing.assert_close(shared[0], shared[4])


def test_unseeded_calls_use_the_generator_per_sample():
    dsa = DifferentiableSiameseAugmentation("rotate")
    x = _images(n=1).expand(4, -1, -1, -1).contiguous()
    a = dsa(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, dsa(x, generator=torch.Generator().manual_seed(1)))
    assert not torch.allclose(a[0], a[1])
    with pytest.raises(AugmentationError, match="either seed or generator"):
        dsa(x, seed=1, generator=torch.Generator())


@pytest.mark.parametrize("op", IMAGE_OPS)
@pytest.mark.parametrize("channels", [1, 4])
def test_gradients_flow_through_every_operation(op, channels):
    x = _images(c=channels).requires_grad_(True)
    out = DifferentiableSiameseAugmentation(op, mode="all")(x, seed=0, per_sample=True)
    assert out.shape == x.shape
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_full_strategy_gradients_and_shapes():
    x = _images(c=4, size=7).requires_grad_(True)
    out = DifferentiableSiameseAugmentation(DEFAULT_DSA_STRATEGY, mode="all")(x, seed=11)
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0


def test_saturation_is_a_no_op_on_one_channel():
    x = _images(c=1)
    torch.testing.assert_close(DifferentiableSiameseAugmentation("saturation")(x, seed=0), x)


def _shifted(image, dy, dx):
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    out[..., max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)] = \
        image[..., max(0, dy): h - max(0, -dy), max(0, dx): w - max(0, -dx)]
    return out


def test_crop_is_an_integer_shift_with_zero_fill():
    x = torch.arange(1, 145, dtype=torch.float32).view(1, 1, 12, 12).expand(6, 1, 12, 12).contiguous()
    out = DifferentiableSiameseAugmentation("crop")(x, generator=torch.Generator().manual_seed(0))
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]  # 12 * 0.125 rounds to 2 pixels
    for image in out:
        assert any(torch.equal(image, _shifted(x[0], dy, dx)) for dy, dx in shifts)


def test_cutout_zeros_a_square():
    x = torch.ones(3, 1, 12, 12)
    out = DifferentiableSiameseAugmentation("cutout")(x, seed=0, per_sample=True)
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 36).all()


def test_unknown_operation_and_mixing_in_call_raise():
    with pytest.raises(AugmentationError, match="Unknown augmentation 'blur'"):
        parse_strategy("color_blur")
    with pytest.raises(AugmentationError, match="augment_batch"):
        DifferentiableSiameseAugmentation(DSA_CUTMIX_STRATEGY)(_images(), seed=0)
    assert parse_strategy(DSA_CUTMIX_STRATEGY).mixing_ops == ("cutmix",)
    assert "cutout" not in parse_strategy(DSA_CUTMIX_STRATEGY).image_ops


def test_cutmix_targets_sum_to_one_and_match_areas():
    n, k, size = 8, 8, 10
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 2, size, size).contiguous()
    targets = F.one_hot(torch.arange(n), k).float()
    for seed in range(10):
        mixed, mixed_targets = cutmix(images, targets, torch.Generator().manual_seed(seed), alpha=1.0)
        torch.testing.assert_close(mixed_targets.sum(1), torch.ones(n))
        for i in range(n):
            fractions = torch.stack([(mixed[i, 0] == value).float().mean() for value in range(k)])
            torch.testing.assert_close(mixed_targets[i], fractions)


def test_cutmix_soft_targets_and_gradients():
    images = _images(n=5).requires_grad_(True)
    soft = torch.softmax(torch.randn(5, 4), dim=1)
    mixed, mixed_targets = cutmix(images, soft, torch.Generator().manual_seed(2), alpha=0.5)
    torch.testing.assert_close(mixed_targets.sum(1), torch.ones(5))
    mixed.sum().backward()
    torch.testing.assert_close(images.grad, torch.ones_like(images))
    with pytest.raises(AugmentationError, match="targets"):
        cutmix(images, torch.arange(5), None)


def test_dsa_cutmix_variant_mixes_targets():
    dsa = DifferentiableSiameseAugmentation(DSA_CUTMIX_STRATEGY, params=DSAParams(mix_prob=1.0))
    x = _images(n=6)
    targets = F.one_hot(torch.arange(6) % 3, 3).float()
    changed = False
    for seed in range(8):
        out, mixed = dsa.augment_batch(x, targets, seed=seed)
        assert out.shape == x.shape
        torch.testing.assert_close(mixed.sum(1), torch.ones(6))
        changed |= not torch.equal(mixed, targets)
        a, b = dsa.augment_batch(x, targets, seed=seed)
        torch.testing.assert_close(a, out, rtol=0, atol=0)
    assert changed
    never = DifferentiableSiameseAugmentation(DSA_CUTMIX_STRATEGY, params=DSAParams(mix_prob=0.0))
    assert torch.equal(never.augment_batch(x, targets, seed=0)[1], targets)
