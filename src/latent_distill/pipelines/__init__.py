"""Distillation pipelines (diffusers ``DiffusionPipeline`` subclasses) and their outputs."""

from .d3hr import D3HRPipeline
from .latent_distillation import (
    LatentDistillationPipeline,
    NonFiniteLossError,
    PipelineLoadError,
)
from .outputs import D3HROutput, LatentDistillationOutput

__all__ = [
    "D3HROutput",
    "D3HRPipeline",
    "LatentDistillationOutput",
    "LatentDistillationPipeline",
    "NonFiniteLossError",
    "PipelineLoadError",
]
