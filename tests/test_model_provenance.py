"""Recorded models: weight fingerprints checked before a set becomes images again, Hub revisions
resolved offline, and no machine paths in what is published."""

import json

import pytest
import torch

from latent_distill import LatentDistillationPipeline, config_for_method
from latent_distill.codec import CodecError
from latent_distill.distilled import DistilledDataset
from latent_distill.model_provenance import (
    ModelMismatchError,
    public_record,
    resolved_revision,
    weights_fingerprint,
)
from latent_distill.precision import freeze
from latent_distill.testing import RecordingHubApi, make_image_dataset, make_tiny_vae

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_fingerprint_follows_the_weights_not_their_precision():
    vae = make_tiny_vae(seed=0)
    before = weights_fingerprint(vae)
    assert weights_fingerprint(make_tiny_vae(seed=0)) == before
    assert weights_fingerprint(make_tiny_vae(seed=1)) != before
    freeze(vae, "cpu", mixed_precision="bf16")  # rounds the weights in place
    assert next(vae.parameters()).dtype == torch.bfloat16 and weights_fingerprint(vae) == before


def distilled_latents(tmp_path) -> tuple[LatentDistillationPipeline, DistilledDataset]:
    pipe = LatentDistillationPipeline(vae=make_tiny_vae(seed=0))
    pipe.set_progress_bar_config(disable=True)
    output = pipe(make_image_dataset(), config_for_method("latent-dm", ipc=1, iterations=1, batch_real=4,
                                                          network_kwargs={"width": 8}))
    return pipe, DistilledDataset.from_pretrained(output.to_distilled_dataset().save_pretrained(tmp_path / "set"))


def test_decode_refuses_another_autoencoder_and_unusable_latents(tmp_path):
    pipe, distilled = distilled_latents(tmp_path)
    assert distilled.record["models"]["vae"]["fingerprint"] == weights_fingerprint(pipe.vae)
    assert pipe.decode(distilled).shape == (8, 1, 28, 28)  # 4 latents per class for the bytes of one image
    with pytest.raises(ModelMismatchError, match="from_distilled"):
        LatentDistillationPipeline(vae=make_tiny_vae(seed=1)).decode(distilled)
    distilled.latents[1, 0, 0, 0] = float("nan")
    with pytest.raises(CodecError, match="1 of 8 latents hold NaN"):
        pipe.decode(distilled)
    distilled.latents = torch.zeros(8, 4, 5, 5)
    with pytest.raises(CodecError, match=r"do not fit this autoencoder.*\(N, 4, 7, 7\)"):
        pipe.decode(distilled)


def test_revision_resolved_from_the_snapshot_or_the_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    assert resolved_revision("org/vae", COMMIT) == COMMIT
    assert resolved_revision("org/vae", loaded_from=f"/cache/models--org--vae/snapshots/{COMMIT}/vae") == COMMIT
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolved_revision("org/vae") is None  # not in the cache: unknown, never guessed
    refs = tmp_path / "models--org--vae" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(COMMIT)
    assert resolved_revision("org/vae") == COMMIT
    assert resolved_revision(str(tmp_path)) is None  # a local folder has no revision


def test_published_record_names_local_folders_only(tmp_path):
    record = {"models": {"vae": {"path": str(tmp_path / "models" / "my-vae"), "fingerprint": "f"},
                         "transformer": {"path": "facebook/DiT-XL-2-256", "revision": COMMIT}}}
    (tmp_path / "models" / "my-vae").mkdir(parents=True)
    public = public_record(record)
    assert public["models"]["vae"] == {"path": "my-vae", "fingerprint": "f", "local": True}
    assert public["models"]["transformer"] == record["models"]["transformer"]
    assert record["models"]["vae"]["path"] == str(tmp_path / "models" / "my-vae")  # the original is untouched


def test_pushed_files_carry_no_machine_path(tmp_path):
    pipe = LatentDistillationPipeline(vae=make_tiny_vae())
    pipe.save_pretrained(tmp_path / "pipe")
    pipe = LatentDistillationPipeline.from_pretrained(tmp_path / "pipe")
    pipe.set_progress_bar_config(disable=True)
    output = pipe(make_image_dataset(), config_for_method("latent-dm", ipc=1, iterations=1, batch_real=4,
                                                          network_kwargs={"width": 8}))
    api = RecordingHubApi()
    output.to_distilled_dataset().push_to_hub("me/set", api=api, local_dir=tmp_path / "push")
    for name in ("README.md", "distillation_config.json"):
        assert str(tmp_path).encode() not in api.uploaded[name], name
    recorded = json.loads(api.uploaded["distillation_config.json"])["config"]["models"]["vae"]
    assert recorded["path"] == "pipe" and recorded["local"] is True
