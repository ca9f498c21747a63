"""The run record both pipelines store with every distilled set.

A run record is the JSON dict a distilled set keeps beside its tensors (``DistilledDataset.record``,
the ``config`` entry of ``distillation_config.json``; ``LatentDistillationOutput.record`` and
``D3HROutput.record`` before the set is made): the images per class and budget, the source image
and sample shapes, the full run configuration under ``distillation``, the source dataset and where
every model came from (``models``), so the set can be reloaded, decoded or regenerated and the run
repeated. :func:`run_record` builds it for every method; :func:`model_references` and
:func:`source_dataset_record` build its ``models`` and ``source_dataset`` entries.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from diffusers import DiffusionPipeline

from ..config import DistillationConfig
from ..d3hr.config import D3HRConfig
from ..data import DatasetLike, ImageClassificationTensors, source_record
from ..default_models import model_reference
from ..model_provenance import resolved_revision, weights_fingerprint

RunConfig = Union[DistillationConfig, D3HRConfig]


def component_reference(pipeline: DiffusionPipeline, name: str) -> dict[str, Any]:
    """Where one component of a pipeline came from, so a distilled set can load it again.

    Args:
        pipeline: the pipeline holding the component.
        name: the component, e.g. ``"vae"``, ``"transformer"`` or ``"scheduler"``.

    Returns:
        ``{"path", "subfolder", "revision"}``: the pipeline's folder and the component's subfolder
        when the pipeline was loaded from one, else the component's own path (``None`` for a model
        built in memory) and no subfolder; ``revision`` is the commit a Hub model resolved to
        (``None`` for local folders). A model also records the ``fingerprint`` of its weights
        (checked before a set is decoded, re-rendered or regenerated); a scheduler its ``class``.
    """
    module = getattr(pipeline, name)
    loaded_from = getattr(module.config, "_name_or_path", None)
    path = pipeline.config.get("_name_or_path") or loaded_from
    reference = {"path": model_reference(path), "subfolder": name if pipeline.config.get("_name_or_path") else None,
                 "revision": resolved_revision(path, loaded_from=loaded_from)}
    if isinstance(module, torch.nn.Module):
        reference["fingerprint"] = weights_fingerprint(module)
    if name == "scheduler":
        reference["class"] = type(module).__name__
    return reference


def model_references(pipeline: DiffusionPipeline, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``models`` entry of a run record: :func:`component_reference` of each component a run used.

    Args:
        pipeline: the pipeline that ran.
        names: the components the run used, in the order recorded.

    Returns:
        Component name -> reference.
    """
    return {name: component_reference(pipeline, name) for name in names}


def source_dataset_record(dataset: DatasetLike, data: ImageClassificationTensors,
                          overrides: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The ``source_dataset`` entry of a run record.

    Args:
        dataset: what the run was given (a ``datasets`` split or dict, or tensors).
        data: the tensors it was turned into.
        overrides: entries recorded in place of (or beside) the detected ones, e.g. the ``id`` and
            ``fingerprint`` of the ``datasets`` split that tensors passed as ``dataset`` came from.

    Returns:
        ``id``, ``num_samples`` and ``num_classes``; the ``fingerprint``, ``config_name`` and
        ``version`` of a ``datasets`` split; then ``overrides``.
    """
    return {**source_record(dataset, data), **(overrides or {})}


def run_record(config: RunConfig, *, budget: str, samples_per_class: int, image_shape: Optional[Sequence[int]],
               sample_shape: Sequence[int], source_dataset: dict[str, Any], models: dict[str, dict[str, Any]],
               latents_per_class: Optional[int] = None) -> dict[str, Any]:
    """Builds the run record of a distillation run.

    Args:
        config: the run configuration (recorded in full under ``distillation``, with its
            ``method_name``).
        budget: ``"storage"`` or ``"count"`` (see ``DistilledDataset.budget``).
        samples_per_class: samples stored (or generated) per class.
        image_shape: ``[C, H, W]`` of the source images; ``None`` when unknown.
        sample_shape: shape of one stored or generated sample (a latent or an image).
        source_dataset: the source dataset entry (:func:`source_dataset_record`).
        models: the models entry (:func:`model_references`).
        latents_per_class: latents stored per class, recorded by latent methods only.

    Returns:
        The record: ``ipc``, ``budget``, ``samples_per_class``, ``image_shape``, ``sample_shape``,
        ``distillation``, ``source_dataset``, ``models`` and, when given, ``latents_per_class``.
    """
    record = {
        "ipc": config.ipc,
        "budget": budget,
        "samples_per_class": samples_per_class,
        "image_shape": list(image_shape) if image_shape is not None else None,
        "sample_shape": list(sample_shape),
        "distillation": {**config.to_dict(), "method_name": config.method_name},
        "source_dataset": source_dataset,
        "models": models,
    }
    if latents_per_class is not None:
        record["latents_per_class"] = latents_per_class
    return record
