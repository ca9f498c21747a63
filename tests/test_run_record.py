"""The run record: one builder for both pipelines, so both record the same entries the same way."""

from __future__ import annotations

from latent_distill import D3HRPipeline, LatentDistillationPipeline, config_for_method
from latent_distill.model_provenance import weights_fingerprint
from latent_distill.pipelines.run_record import model_references
from latent_distill.testing import (
    make_dit_scheduler,
    make_image_dataset,
    make_tiny_dit,
    make_tiny_vae,
)

ENTRIES = ["ipc", "budget", "samples_per_class", "image_shape", "sample_shape", "distillation", "source_dataset",
           "models"]


def test_both_pipelines_record_the_same_entries_and_models(tmp_path):
    folder = tmp_path / "pipe"
    LatentDistillationPipeline(vae=make_tiny_vae(), transformer=make_tiny_dit(num_classes=2),
                               scheduler=make_dit_scheduler()).save_pretrained(folder)
    d3hr, ld3m = D3HRPipeline.from_pretrained(folder), LatentDistillationPipeline.from_pretrained(folder)
    data = make_image_dataset(num_per_class=6)
    d3hr_record = d3hr(data, ipc=1, num_candidates=16, inversion_steps=3, num_inference_steps=5).record
    ld3m_record = ld3m(data, config_for_method("ld3m-dm", ipc=1, budget="count", iterations=1, batch_real=4,
                                               checkpoint_every=0, representation_kwargs={"num_steps": 2})).record
    assert list(d3hr_record) == list(ld3m_record) == ENTRIES
    assert d3hr_record["models"] == ld3m_record["models"] == model_references(d3hr, ("vae", "transformer", "scheduler"))
    assert d3hr_record["models"]["scheduler"] == {"path": str(folder), "subfolder": "scheduler", "revision": None,
                                                  "class": "DDIMScheduler"}
    assert d3hr_record["source_dataset"] == ld3m_record["source_dataset"]
    assert d3hr_record["image_shape"] == ld3m_record["image_shape"] == [1, 28, 28]


def test_models_built_in_memory_record_no_path():
    pipe = LatentDistillationPipeline(vae=make_tiny_vae())
    assert model_references(pipe, ("vae",)) == {"vae": {"path": None, "subfolder": None, "revision": None,
                                                        "fingerprint": weights_fingerprint(pipe.vae)}}
