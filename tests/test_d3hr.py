"""D3HR on a tiny random DiT and autoencoder: inversion, Gaussians, group sampling, regeneration."""

import json

import datasets
import pytest
import torch
from diffusers import DiTTransformer2DModel

from latent_distill import (
    D3HRConfig,
    D3HRPipeline,
    DistilledDataset,
    dataset_to_tensors,
)
from latent_distill.d3hr import (
    FittedGaussians,
    GaussianAccumulator,
    GaussianFitError,
    GroupScoreWeights,
    fit_subset,
    redraw_group,
    score_groups,
    select_group,
)
from latent_distill.diffusion import (
    DenoiserError,
    GuidedDenoiser,
    ddim_invert,
    ddim_regenerate,
    ddim_schedulers,
    inversion_timestep,
)
from latent_distill.testing import (
    FAST_D3HR,
    make_dit_scheduler,
    make_image_dataset,
    make_tiny_dit,
    make_tiny_pipeline,
    make_tiny_vae,
)


@pytest.fixture
def pipe() -> D3HRPipeline:
    return make_tiny_pipeline(D3HRPipeline, num_classes=2)


def round_trip(num_inference_steps: int, guidance_scale: float) -> tuple[float, float]:
    """Inverts to 40% of the grid and regenerates; returns (distance moved, distance from the start)."""
    denoiser = GuidedDenoiser(make_tiny_dit(num_classes=2), guidance_scale=guidance_scale)
    sampler, inverter = ddim_schedulers(make_dit_scheduler(), num_inference_steps)
    start = torch.randn(4, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 0, 1])
    steps = int(0.4 * num_inference_steps)
    inverted = ddim_invert(denoiser, inverter, start, labels, steps)
    back = ddim_regenerate(denoiser, sampler, inverted, labels, inversion_timestep(inverter, steps))
    return float((inverted - start).abs().mean()), float((back - start).abs().mean())


def test_inversion_then_regeneration_returns_near_the_start():
    moved, error = round_trip(200, guidance_scale=1.0)
    assert moved > 0.3  # the latent really went to a noisy level
    assert error < 0.1 * moved
    # The approximate inversion's error shrinks as the grid is refined, with or without guidance.
    for guidance_scale in (1.0, 2.0):
        assert round_trip(1000, guidance_scale)[1] < 0.5 * round_trip(50, guidance_scale)[1]


def test_inversion_continues_in_stages():
    denoiser = GuidedDenoiser(make_tiny_dit(num_classes=2), guidance_scale=2.0)
    _, inverter = ddim_schedulers(make_dit_scheduler(), 20)
    start, labels = torch.randn(2, 4, 7, 7), torch.tensor([0, 1])
    halfway = ddim_invert(denoiser, inverter, start, labels, steps=4)
    staged = ddim_invert(denoiser, inverter, halfway, labels, steps=9, start_step=4)
    torch.testing.assert_close(staged, ddim_invert(denoiser, inverter, start, labels, steps=9))


def test_inversion_depth_is_checked_against_the_grid():
    _, inverter = ddim_schedulers(make_dit_scheduler(), 50)
    assert inversion_timestep(inverter, 31) == 600  # D3HR's default depth
    with pytest.raises(ValueError, match="outside 1..50"):
        inversion_timestep(inverter, 51)


def test_learned_sigma_channels_are_split_off():
    denoiser = GuidedDenoiser(make_tiny_dit(learned_sigma=True), guidance_scale=3.0)
    noise = denoiser(torch.randn(2, 4, 7, 7), 500, torch.tensor([0, 1]))
    assert noise.shape == (2, 4, 7, 7)


def test_guidance_mixes_conditional_and_null_predictions():
    transformer = make_tiny_dit(num_classes=2, learned_sigma=False)
    latents, labels = torch.randn(3, 4, 7, 7), torch.tensor([0, 1, 1])
    plain = GuidedDenoiser(transformer, 1.0)
    conditional = plain(latents, 100, labels)
    unconditional = plain(latents, 100, torch.full((3,), 2))
    guided = GuidedDenoiser(transformer, 4.0)(latents, 100, labels)
    torch.testing.assert_close(guided, unconditional + 4.0 * (conditional - unconditional), atol=1e-5, rtol=1e-4)


def test_denoiser_rejects_mismatched_latents_and_labels():
    denoiser = GuidedDenoiser(make_tiny_dit(num_classes=2))
    with pytest.raises(DenoiserError, match="channels"):
        denoiser.check_latents(torch.zeros(1, 3, 7, 7))
    with pytest.raises(DenoiserError, match="fine-tune"):
        denoiser.check_labels(torch.tensor([5]))


def test_streamed_gaussian_fit_matches_torch():
    samples = torch.randn(50, 3, 2, 2) * 3 + 1
    labels = torch.arange(50) % 3
    accumulator = GaussianAccumulator(3, 12)
    for rows in torch.arange(50).split(7):
        accumulator.update(samples[rows], labels[rows])
    fitted = accumulator.finalize()
    for c in range(3):
        flat = samples[labels == c].reshape(-1, 12)
        torch.testing.assert_close(fitted.mean[c], flat.mean(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fitted.std[c], flat.std(0), atol=1e-5, rtol=1e-5)
    assert fitted.counts.tolist() == [17, 17, 16]


def test_gaussian_fit_needs_two_samples_per_class():
    accumulator = GaussianAccumulator(2, 4)
    accumulator.update(torch.randn(3, 4), torch.tensor([0, 0, 1]))
    with pytest.raises(GaussianFitError, match=r"\[1\]"):
        accumulator.finalize()


@pytest.mark.parametrize("skew", ["per_dimension", "reference"])
def test_scorer_prefers_groups_from_the_true_distribution(skew):
    generator = torch.Generator().manual_seed(0)
    sigma = torch.rand(64, generator=generator) + 0.5
    true = torch.randn(200, 10, 64, generator=generator)
    shifted = true + 0.5
    widened = true * 1.6
    weights = GroupScoreWeights()
    true_scores = score_groups(true, sigma, weights, skew)
    assert (true_scores < score_groups(shifted, sigma, weights, skew)).float().mean() > 0.95
    assert (true_scores < score_groups(widened, sigma, weights, skew)).float().mean() > 0.95


def test_per_dimension_skewness_matches_the_textbook_formula():
    draws = torch.randn(1, 6, 3)
    sigma = torch.ones(3)
    only_skew = score_groups(draws.clone(), sigma, GroupScoreWeights(0.0, 0.0, 1.0))
    x = draws[0]
    standard = (x - x.mean(0)) / x.std(0)
    n = 6
    expected = (n / ((n - 1) * (n - 2)) * standard.pow(3).sum(0)).norm()
    torch.testing.assert_close(only_skew[0], expected, atol=1e-4, rtol=1e-4)


def test_ipc_one_scores_by_the_mean_term_only():
    draws = torch.randn(50, 1, 16)
    sigma = torch.full((16,), 2.0)
    scores = score_groups(draws.clone(), sigma)
    assert torch.isfinite(scores).all()
    torch.testing.assert_close(scores, (2.0 * draws[:, 0]).norm(dim=1))


def test_group_selection_is_seeded_chunked_and_redrawable():
    sigma = torch.ones(20)
    small_chunks = select_group(sigma, ipc=4, num_candidates=300, seed=3, class_index=1, max_chunk_bytes=4096)
    again = select_group(sigma, ipc=4, num_candidates=300, seed=3, class_index=1, max_chunk_bytes=4096)
    assert torch.equal(small_chunks.draws, again.draws)
    redrawn = redraw_group(small_chunks.chunk_seed, small_chunks.index, small_chunks.chunk_count, 4, 20)
    assert torch.equal(redrawn, small_chunks.draws)
    single = select_group(sigma, ipc=4, num_candidates=1, seed=3, class_index=1)
    assert small_chunks.score <= float(score_groups(single.draws[None].clone(), sigma)[0])
    other_class = select_group(sigma, ipc=4, num_candidates=300, seed=3, class_index=2, max_chunk_bytes=4096)
    assert not torch.equal(other_class.draws, small_chunks.draws)


def test_d3hr_end_to_end_reproducible_and_ipc_one(pipe):
    data = make_image_dataset(num_per_class=6)
    out = pipe(data, **FAST_D3HR, ipc=3)
    assert out.images.shape == (6, 1, 28, 28) and out.images.dtype == torch.uint8
    assert out.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert out.gaussians["mean"].shape == (2, 4 * 7 * 7)
    assert out.gaussians["timestep"] == inversion_timestep(ddim_schedulers(pipe.scheduler, 10)[1], 5)
    gaussians = pipe.fit(data, D3HRConfig(**FAST_D3HR))  # __call__ is fit then sample
    assert gaussians.timestep == out.gaussians["timestep"] and gaussians.class_names == out.class_names
    again = pipe.sample(gaussians, config=D3HRConfig(**FAST_D3HR, ipc=3))
    assert torch.equal(again.images, out.images) and again.record == out.record
    from_stored = pipe.sample(gaussians, config=D3HRConfig(**FAST_D3HR, ipc=3), stored_groups=out.gaussians)
    assert torch.equal(from_stored.latents, out.latents)
    reloaded = FittedGaussians.from_stored(out.gaussians, out.class_names)
    assert torch.equal(pipe.sample(reloaded, ipc=3, config=D3HRConfig(**FAST_D3HR)).latents, out.latents)
    one = pipe.sample(gaussians, ipc=1, config=D3HRConfig(**FAST_D3HR))
    assert one.images.shape == (2, 1, 28, 28) and torch.isfinite(one.latents).all()
    other_seed = pipe.sample(gaussians, config=D3HRConfig(**FAST_D3HR, ipc=3, seed=1))
    assert not torch.equal(other_seed.latents, out.latents)


def test_d3hr_ddpm_noising_and_subsampled_fit(pipe):
    data = make_image_dataset(num_per_class=6)
    gaussians = pipe.fit(data, D3HRConfig(**FAST_D3HR, noising="ddpm", max_samples_per_class=4))
    assert gaussians.counts.tolist() == [4, 4]
    again = pipe.fit(data, D3HRConfig(**FAST_D3HR, noising="ddpm", max_samples_per_class=4))
    assert torch.equal(gaussians.mean, again.mean)


def test_fit_subset_is_a_seeded_choice_per_class():
    data = dataset_to_tensors(make_image_dataset(num_per_class=6))
    subset = fit_subset(data, max_samples_per_class=4, seed=0)
    assert subset.labels.tolist() == [0] * 4 + [1] * 4
    assert torch.equal(fit_subset(data, 4, seed=0).images, subset.images)
    assert not torch.equal(fit_subset(data, 4, seed=1).images, subset.images)
    assert fit_subset(data, None, seed=0) is data


def test_fit_resumes_from_per_class_checkpoints(pipe, tmp_path):
    data = make_image_dataset(num_per_class=5)
    config = D3HRConfig(**FAST_D3HR)
    full = pipe.fit(data, config)
    pipe.fit(data, config, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / "d3hr-fit-0.pt", weights_only=False)
    assert state["done"] == [0, 1]
    # A run that died after class 0: keep only class 0 in the saved state, then resume.
    state["done"] = [0]
    state["accumulator"]["counts"][1] = 0
    state["accumulator"]["sums"][1] = 0
    state["accumulator"]["squares"][1] = 0
    torch.save(state, tmp_path / "d3hr-fit-0.pt")
    resumed = pipe.fit(data, config, checkpoint_dir=tmp_path, resume=True)
    torch.testing.assert_close(resumed.mean, full.mean)
    torch.testing.assert_close(resumed.std, full.std)
    with pytest.raises(ValueError, match="other settings"):
        pipe.fit(data, config.replace(inversion_steps=4), checkpoint_dir=tmp_path, resume=True)


def test_d3hr_storage_round_trips_through_load_dataset(pipe, tmp_path):
    out = pipe(make_image_dataset(num_per_class=6), **FAST_D3HR, ipc=2)
    distilled = out.to_distilled_dataset()
    assert distilled.stored_representation == "gaussians"
    distilled.save_pretrained(tmp_path / "set")
    gaussians = datasets.load_dataset(str(tmp_path / "set"), "gaussians", split="train")
    assert torch.equal(torch.tensor(gaussians["mean"]), out.gaussians["mean"])
    images = datasets.load_dataset(str(tmp_path / "set"), "images", split="train")
    assert len(images) == 4
    reloaded = DistilledDataset.from_pretrained(tmp_path / "set")
    gaussians = FittedGaussians.from_stored(reloaded.gaussians, reloaded.class_names)
    regenerated = pipe.sample(gaussians, config=D3HRConfig(**FAST_D3HR, ipc=2), stored_groups=reloaded.gaussians)
    assert torch.equal(regenerated.images, out.images)


def test_d3hr_pipeline_loads_a_dit_xl_style_repo(tmp_path):
    """`facebook/DiT-XL-2-256` layout: DiTPipeline index with id2label, a legacy `Transformer2DModel`
    config (ada_norm_zero, learned sigma), the VAE and a DDIM scheduler in subfolders."""
    vae, transformer, scheduler = make_tiny_vae(), make_tiny_dit(num_classes=2), make_dit_scheduler()
    vae.save_pretrained(tmp_path / "vae")
    transformer.save_pretrained(tmp_path / "transformer")
    config_path = tmp_path / "transformer" / "config.json"
    config_path.write_text(config_path.read_text().replace('"DiTTransformer2DModel"', '"Transformer2DModel"'))
    scheduler.save_pretrained(tmp_path / "scheduler")
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "DiTPipeline", "_diffusers_version": "0.12.0.dev0",
        "transformer": ["diffusers", "Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDIMScheduler"], "id2label": {"0": "tench", "1": "goldfish"},
    }))
    pipe = D3HRPipeline.from_pretrained(tmp_path)
    assert isinstance(pipe.transformer, DiTTransformer2DModel) and pipe.transformer.config.out_channels == 8
    out = pipe(make_image_dataset(num_per_class=4), **FAST_D3HR, ipc=2)
    assert out.latents.shape == (4, 4, 7, 7)


def test_group_choice_does_not_depend_on_worker_threads():
    sigma = torch.rand(30) + 0.5
    one = select_group(sigma, ipc=5, num_candidates=2000, seed=1, class_index=0, max_chunk_bytes=8192, workers=1)
    two = select_group(sigma, ipc=5, num_candidates=2000, seed=1, class_index=0, max_chunk_bytes=8192, workers=2)
    assert torch.equal(one.draws, two.draws) and one.score == two.score


def test_frozen_models_follow_accelerate_mixed_precision(pipe, monkeypatch):
    from latent_distill.precision import PrecisionError, frozen_model_dtype

    assert frozen_model_dtype("no") == torch.float32
    assert frozen_model_dtype("fp16", device="cpu") == torch.bfloat16  # no fast fp16 kernels on a CPU
    with pytest.raises(PrecisionError, match="bf16"):
        frozen_model_dtype("fp8")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    out = pipe(make_image_dataset(num_per_class=4), **FAST_D3HR, ipc=2)
    assert pipe.vae.dtype == torch.bfloat16 and pipe.transformer.dtype == torch.bfloat16
    # What is fitted, selected and stored stays float32.
    assert out.latents.dtype == torch.float32 and out.gaussians["mean"].dtype == torch.float32
    assert torch.isfinite(out.latents).all()
