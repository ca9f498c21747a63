"""Distillation pipelines (diffusers ``DiffusionPipeline`` subclasses) and their outputs."""

from .latent_distillation import (
    LatentDistillationPipeline,
    NonFiniteLossError,
    PipelineLoadError,
)
from .outputs import LatentDistillationOutput

__all__ = ["LatentDistillationPipeline", "LatentDistillationOutput", "NonFiniteLossError", "PipelineLoadError"]
