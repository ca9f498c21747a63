"""LD3M: the skip-connected DDIM step, the learnable class embeddings, the two-pass render, and the
``"diffusion"`` representation in the pipeline (tiny random DiT and VAE)."""

from __future__ import annotations

import math

import datasets
import pytest
import torch

from latent_distill import LatentDistillationPipeline, config_for_method
from latent_distill.codec import LatentCodec
from latent_distill.diffusion import GuidedDenoiser, ddim_regenerate, ddim_schedulers
from latent_distill.distilled import DistilledDataset, DistilledDatasetError
from latent_distill.representations import (
    DiffusionPrior,
    DiffusionPriorError,
    DiffusionRenderer,
    RepresentationConfigError,
    get_representation,
    skip_ddim_step,
    skip_weight,
)
from latent_distill.testing import (
    make_dit_scheduler,
    make_image_dataset,
    make_tiny_dit,
    make_tiny_pipeline,
    make_tiny_vae,
)

NUM_CLASSES = 2


@pytest.fixture(scope="module")
def models():
    vae = make_tiny_vae().requires_grad_(False).eval()
    return LatentCodec(vae, 28), make_tiny_dit(NUM_CLASSES), make_dit_scheduler()


def prior(models, latents=None, embeddings=None, seed=0, **options) -> DiffusionPrior:
    codec, transformer, scheduler = models
    if latents is None:
        latents = torch.randn((2 * NUM_CLASSES, 4, 7, 7), generator=torch.Generator().manual_seed(1))
    return DiffusionPrior.restore(latents, embeddings, NUM_CLASSES, codec=codec, transformer=transformer,
                                  scheduler=scheduler, options=options, seed=seed)


def image_loss(images: torch.Tensor) -> torch.Tensor:
    """A fixed, non-trivial function of the images."""
    target = torch.linspace(-1, 1, images.numel()).reshape(images.shape)
    return (images - target).pow(2).sum()


def gradients(representation: DiffusionPrior) -> tuple[torch.Tensor, torch.Tensor]:
    representation.zero_grad(set_to_none=True)
    image_loss(representation.render_all()).backward()
    return representation.samples.grad.clone(), representation.class_embeddings.grad.clone()


# -- the step ------------------------------------------------------------------------------------


def test_skip_weights_decay_linearly_from_the_first_step():
    assert [skip_weight(i, 4, "paper") for i in (3, 2, 1, 0)] == [1.0, 0.75, 0.5, 0.25]
    assert [skip_weight(i, 4, "reference") for i in (3, 2, 1, 0)] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert [skip_weight(i, 4, "none") for i in (3, 2, 1, 0)] == [0.0] * 4
    assert skip_weight(0, 1, "paper") == 1.0 and skip_weight(0, 1, "reference") == 0.0
    with pytest.raises(KeyError, match="available"):
        skip_weight(0, 1, "bogus")


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_one_step_is_the_ddim_step_mixed_with_the_skip_term(weight):
    sampler, _ = ddim_schedulers(make_dit_scheduler(), 1)
    timestep = int(sampler.timesteps[0])
    generator = torch.Generator().manual_seed(0)
    sample, eps, source = (torch.randn((2, 4, 7, 7), generator=generator) for _ in range(3))
    ddim = sampler.step(eps, timestep, sample, eta=0.0)
    alpha_bar_t, alpha_bar_prev = float(sampler.alphas_cumprod[timestep]), float(sampler.final_alpha_cumprod)

    paper = skip_ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, source, "paper")
    torch.testing.assert_close(paper, (1 - weight) * ddim.prev_sample + weight * source)
    reference = skip_ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, source, "reference")
    x0 = (1 - weight) * ddim.pred_original_sample + weight * source
    torch.testing.assert_close(reference, math.sqrt(alpha_bar_prev) * x0 + math.sqrt(1 - alpha_bar_prev) * eps)
    plain = skip_ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, source, "none")
    torch.testing.assert_close(plain, ddim.prev_sample)


def test_renderer_uses_the_ddim_grid_and_final_alpha(models):
    codec, transformer, scheduler = models
    renderer = DiffusionRenderer(transformer, scheduler, codec, prior(models, num_steps=4).renderer.options)
    sampler, _ = ddim_schedulers(scheduler, 4)
    assert renderer.timesteps == sampler.timesteps.tolist()
    assert renderer.alpha_bars[0] == (pytest.approx(float(sampler.alphas_cumprod[renderer.timesteps[0]])),
                                      pytest.approx(float(sampler.alphas_cumprod[renderer.timesteps[1]])))
    assert renderer.alpha_bars[-1][1] == pytest.approx(float(sampler.final_alpha_cumprod))


def test_one_step_render_paper_decodes_the_noised_latent_and_reference_is_plain_ddim(models):
    codec, transformer, scheduler = models
    paper, reference = prior(models, num_steps=1, skip="paper"), prior(models, num_steps=1, skip="reference")
    renderer = paper.renderer
    indices = range(len(paper.samples))
    alpha_bar = renderer.alpha_bars[0][0]
    start = math.sqrt(alpha_bar) * paper.samples + math.sqrt(1 - alpha_bar) * renderer.noise(indices, 0, (4, 7, 7))
    with torch.no_grad():
        # paper, K = 1: the only step has weight t/T = 1, so the sample is z_T itself
        torch.testing.assert_close(paper.render_all(), codec.decode_batch(start))
        # reference, K = 1: weight 0, plain DDIM with the DiT's own label embeddings (the initial c)
        sampler, _ = ddim_schedulers(scheduler, 1)
        expected = ddim_regenerate(GuidedDenoiser(transformer, 1.0), sampler, start, paper.labels,
                                   renderer.timesteps[0])
        torch.testing.assert_close(reference.render_all(), codec.decode_batch(expected))


def test_initial_class_embeddings_reproduce_plain_label_conditioning(models):
    codec, transformer, scheduler = models
    representation = prior(models, num_steps=3, skip="none", guidance_scale=2.0)
    renderer = representation.renderer
    assert representation.class_embeddings.shape == (4, len(renderer.embedders), 16)
    alpha_bar = renderer.alpha_bars[0][0]
    start = math.sqrt(alpha_bar) * representation.samples + \
        math.sqrt(1 - alpha_bar) * renderer.noise(range(4), 0, (4, 7, 7))
    with torch.no_grad():
        sampler, _ = ddim_schedulers(scheduler, 3)
        expected = ddim_regenerate(GuidedDenoiser(transformer, 2.0), sampler, start, representation.labels,
                                   renderer.timesteps[0])
        torch.testing.assert_close(representation.render_all(), codec.decode_batch(expected))
        # another class embedding changes the result: the override reaches the denoiser
        representation.class_embeddings.add_(1.0)
        assert not torch.allclose(representation.render_all(), codec.decode_batch(expected))


# -- gradients -----------------------------------------------------------------------------------


def test_gradients_reach_latents_and_embeddings_and_the_skip_keeps_them_larger(models):
    norms = {}
    for skip in ("paper", "reference", "none"):
        latent_gradient, embedding_gradient = gradients(prior(models, num_steps=20, skip=skip))
        assert latent_gradient.abs().sum() > 0 and embedding_gradient.abs().sum() > 0
        norms[skip] = latent_gradient.norm().item()
    assert norms["paper"] > norms["none"]
    assert norms["reference"] > norms["none"]


@pytest.mark.parametrize("guidance_scale", [1.0, 2.0])
def test_two_pass_backward_equals_one_pass_backward(models, guidance_scale):
    options = dict(num_steps=3, skip="paper", guidance_scale=guidance_scale)
    two_pass = gradients(prior(models, chunk_size=1, chunked_backward=True, checkpointing=True, **options))
    one_pass = gradients(prior(models, chunk_size=4, chunked_backward=False, checkpointing=False, **options))
    for chunked, plain in zip(two_pass, one_pass):
        torch.testing.assert_close(chunked, plain, rtol=1e-4, atol=1e-6)


def test_two_pass_backward_tolerates_embeddings_the_images_do_not_use(models):
    # paper form, K = 1: the only step returns z_T, so the denoiser (and c) is never used
    latent_gradient, embedding_gradient = gradients(prior(models, num_steps=1, skip="paper"))
    assert latent_gradient.abs().sum() > 0 and embedding_gradient.abs().sum() == 0


def test_loss_pass_and_gradient_pass_draw_the_same_noise(models, monkeypatch):
    representation = prior(models, num_steps=2, chunk_size=1)
    representation.begin_iteration(7)
    draws = []
    noise = representation.renderer.noise

    def recording_noise(indices, noise_key, shape):
        draws.append((noise_key, list(indices)))
        return noise(indices, noise_key, shape)

    monkeypatch.setattr(representation.renderer, "noise", recording_noise)
    images = representation.render(1)
    forward_draws = list(draws)
    assert forward_draws == [(7, [2]), (7, [3])]
    image_loss(images).backward()
    assert draws[len(forward_draws):] == forward_draws
    # the images of the loss pass are a re-render of the same function of (z, c)
    with torch.no_grad():
        torch.testing.assert_close(representation.render(1), images)
        representation.begin_iteration(8)
        assert not torch.allclose(representation.render(1), images)


def test_exported_latents_and_embeddings_rerender_the_exported_images(models):
    representation = prior(models, num_steps=3, seed=5)
    optimizer = torch.optim.SGD(representation.parameters(), lr=0.5)
    for step in range(2):
        representation.begin_iteration(step)
        optimizer.zero_grad()
        image_loss(representation.render_all()).backward()
        optimizer.step()
    stored = representation.export(None)
    assert stored["images"].dtype == torch.uint8 and stored["images"].shape == (4, 1, 28, 28)
    torch.testing.assert_close(stored["latents"], representation.samples.detach())
    restored = prior(models, stored["latents"], stored["class_embeddings"], seed=5, num_steps=3)
    assert torch.equal(restored.export(None)["images"], stored["images"])


def test_representation_options_are_validated(models):
    with pytest.raises(RepresentationConfigError, match=r"num_step.*valid keys are .*num_steps"):
        prior(models, num_step=3)
    with pytest.raises(RepresentationConfigError, match="skip must be one of"):
        prior(models, skip="always")
    with pytest.raises(RepresentationConfigError, match="takes none"):
        get_representation("pixel").create(torch.zeros(2, 1, 28, 28), 2, options={"num_steps": 3})


# -- the pipeline --------------------------------------------------------------------------------


@pytest.mark.parametrize("method,overrides", [
    ("ld3m-dm", {}),
    ("ld3m-dc", {}),
    ("ld3m-mtt", {"objective_kwargs": {"num_experts": 1, "expert_batch_size": 8}}),
])
def test_pipeline_distils_with_the_diffusion_prior(method, overrides):
    pipe = make_tiny_pipeline(num_classes=NUM_CLASSES)
    config = config_for_method(method, iterations=2, ipc=1, batch_real=4, checkpoint_every=0,
                               representation_kwargs={"num_steps": 2}, **overrides)
    output = pipe(make_image_dataset(), config)
    assert output.images.shape == (2, 1, 28, 28) and output.images.dtype == torch.uint8
    assert output.latents.shape == (2, 4, 7, 7)
    assert output.class_embeddings.shape == (2, 1, 16)
    assert output.labels.tolist() == [0, 1]
    assert len(output.losses) == 2 and all(math.isfinite(loss) for loss in output.losses)
    assert output.record["distillation"]["representation_kwargs"] == {"num_steps": 2, "skip": "paper",
                                                                     "guidance_scale": 1.0}
    assert "transformer" in output.record["models"]
    published = output.to_distilled_dataset()
    assert torch.equal(published.images, output.images) and torch.equal(published.latents, output.latents)
    assert torch.equal(published.class_embeddings, output.class_embeddings)


def test_pipeline_without_a_denoiser_names_the_fix():
    pipe = make_tiny_pipeline()
    config = config_for_method("ld3m-dm", iterations=1, ipc=1, batch_real=4, checkpoint_every=0)
    with pytest.raises(DiffusionPriorError, match="no transformer and scheduler.*train_latent_diffusion.py"):
        pipe(make_image_dataset(), config)


def test_ld3m_set_stores_initial_latents_with_class_embeddings_and_rerenders(tmp_path):
    pipe = make_tiny_pipeline(num_classes=NUM_CLASSES)
    config = config_for_method("ld3m-dm", iterations=2, ipc=1, batch_real=4, checkpoint_every=0,
                               representation_kwargs={"num_steps": 2})
    output = pipe(make_image_dataset(), config)
    folder = output.to_distilled_dataset().save_pretrained(tmp_path / "set")

    rows = datasets.load_dataset(str(folder), "latents", split="train",
                                 cache_dir=str(tmp_path / "cache")).with_format("torch")[:]
    assert rows["class_embedding"].shape == (2, 1, 16)
    assert torch.equal(rows["class_embedding"], output.class_embeddings)
    loaded = DistilledDataset.from_pretrained(folder)
    assert torch.equal(loaded.class_embeddings, output.class_embeddings)
    assert torch.equal(loaded.latents, output.latents)
    assert loaded.storage_bytes() == (output.latents.numel() + output.class_embeddings.numel()) * 4
    assert "class embeddings" in (folder / "README.md").read_text(encoding="utf-8")

    assert torch.equal(pipe.rerender(loaded), output.images)
    with pytest.raises(DistilledDatasetError, match="rerender"):
        pipe.decode(loaded)
    with pytest.raises(DistilledDatasetError, match=r"load one with LatentDistillationPipeline\.from_pretrained"):
        LatentDistillationPipeline.from_distilled(loaded)  # the in-memory models record no folder to load them from


def test_class_embeddings_need_latents_row_by_row():
    labels = torch.tensor([0, 1])
    with pytest.raises(DistilledDatasetError, match="pass latents too"):
        DistilledDataset(method="ld3m-dm", class_names=["a", "b"], labels=labels,
                         images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), class_embeddings=torch.zeros(2, 1, 3))
    with pytest.raises(DistilledDatasetError, match="class_embeddings"):
        DistilledDataset(method="ld3m-dm", class_names=["a", "b"], labels=labels, latents=torch.zeros(2, 4, 2, 2),
                         class_embeddings=torch.zeros(3, 1, 3))
    plain = DistilledDataset(method="latent-dm", class_names=["a", "b"], labels=labels, latents=torch.zeros(2, 4, 2, 2))
    with pytest.raises(DistilledDatasetError, match="only LD3M sets"):
        LatentDistillationPipeline(vae=make_tiny_vae()).rerender(plain)
