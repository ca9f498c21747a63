"""Loading the models a distilled set recorded, so its latents or Gaussians become images again.

A run records where its models came from in ``record["models"]`` of the set it writes: name ->
``{"path", "subfolder", "revision"}`` (``path`` is ``None`` for models built in memory, which
cannot be loaded back; a scheduler also records its ``class``), written by
:mod:`latent_distill.pipelines.run_record`. The pipelines' ``from_distilled`` classmethods use these helpers.
"""

from __future__ import annotations

from typing import Optional, Sequence, TypeVar

from diffusers import AutoencoderKL, DiffusionPipeline

from ..default_models import resolve_model_reference
from ..distilled import DistilledDataset, DistilledDatasetError
from ..model_provenance import check_weights

PipelineT = TypeVar("PipelineT", bound=DiffusionPipeline)


def model_record(distilled: DistilledDataset, name: str) -> Optional[dict]:
    """The record of one model of a distilled set.

    Args:
        distilled: the distilled set.
        name: the component, e.g. ``"vae"`` or ``"transformer"``.

    Returns:
        ``record["models"][name]`` when it names a path, else ``None``.
    """
    record = (distilled.record.get("models") or {}).get(name) or {}
    return record if record.get("path") else None


def check_recorded_weights(distilled: DistilledDataset, pipeline: DiffusionPipeline, names: Sequence[str]) -> None:
    """Refuses models whose weights differ from those a set recorded (sets without fingerprints pass).

    Args:
        distilled: the distilled set.
        pipeline: the pipeline about to decode, re-render or regenerate it.
        names: the components it will use, e.g. ``("vae",)``.

    Raises:
        ModelMismatchError: for the first component whose weights differ.
    """
    models = distilled.record.get("models") or {}
    for name in names:
        check_weights(models.get(name), getattr(pipeline, name), name)


def load_autoencoder(record: dict) -> AutoencoderKL:
    """Loads the ``AutoencoderKL`` of one model record.

    Args:
        record: ``{"path", "subfolder", "revision"}`` as :func:`model_record` returns it.

    Returns:
        The autoencoder.

    Raises:
        OSError: when the recorded folder or repository holds no autoencoder.
    """
    return AutoencoderKL.from_pretrained(resolve_model_reference(record["path"]), subfolder=record.get("subfolder"),
                                         revision=record.get("revision"))


def load_recorded_autoencoder(distilled: DistilledDataset, pipeline_class: type[PipelineT]) -> AutoencoderKL:
    """Loads the autoencoder a distilled set recorded.

    Args:
        distilled: the distilled set.
        pipeline_class: the pipeline it is loaded for (named in the error message).

    Returns:
        The autoencoder of ``record["models"]["vae"]``.

    Raises:
        DistilledDatasetError: when the set records no autoencoder.
    """
    record = model_record(distilled, "vae")
    if record is None:
        raise DistilledDatasetError(
            f"This {distilled.method} set records no autoencoder (vae) in record['models']: build "
            f"{pipeline_class.__name__}(vae=AutoencoderKL.from_pretrained(...)) with the autoencoder it was "
            "distilled with."
        )
    return load_autoencoder(record)


def load_recorded_pipeline(distilled: DistilledDataset, pipeline_class: type[PipelineT]) -> PipelineT:
    """Loads a pipeline with the autoencoder and diffusion model a distilled set recorded.

    The diffusion model's folder is loaded as a pipeline (``pipeline_class.from_pretrained``); an
    autoencoder recorded from another folder or revision replaces the one found there.

    Args:
        distilled: the distilled set (D3HR or LD3M).
        pipeline_class: the pipeline class to load.

    Returns:
        The loaded pipeline.

    Raises:
        DistilledDatasetError: when the set records no autoencoder or no diffusion model, or the
            recorded models cannot be loaded.
    """
    vae, transformer = model_record(distilled, "vae"), model_record(distilled, "transformer")
    name = pipeline_class.__name__
    if vae is None or transformer is None:
        missing = "autoencoder (vae)" if vae is None else "diffusion model (transformer)"
        raise DistilledDatasetError(
            f"This {distilled.method} set records no {missing} in record['models'], so its pipeline cannot be "
            f"loaded: load one with {name}.from_pretrained(...) holding the models it was distilled with."
        )
    path, revision = transformer["path"], transformer.get("revision")
    try:
        components = {}
        if (vae["path"], vae.get("revision")) != (path, revision):
            components["vae"] = load_autoencoder(vae)
        return pipeline_class.from_pretrained(resolve_model_reference(path), revision=revision, **components)
    except (OSError, ValueError) as error:
        raise DistilledDatasetError(
            f"The pipeline recorded by this set ({path!r}, revision {revision!r}) could not be loaded: "
            f"{str(error).rstrip('.')}. Build {name}(vae=..., transformer=..., scheduler=...) with the models it was "
            "distilled with."
        ) from error
