"""Per-sample class embeddings injected into a class-conditional DiT (what LD3M learns).

diffusers' ``DiTTransformer2DModel`` embeds the class label once per transformer block; LD3M replaces
those table rows by learnable embeddings. :func:`class_embedders` finds the embedding modules and
:func:`override_class_embeddings` swaps the rows of one batch in with forward hooks.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator, Sequence

import torch
from diffusers.models.embeddings import LabelEmbedding
from torch import nn

from .guidance import DenoiserError


def class_embedders(transformer: nn.Module) -> list[LabelEmbedding]:
    """The label-embedding modules of a class-conditional DiT, in block order.

    diffusers' ``DiTTransformer2DModel`` holds one ``LabelEmbedding`` per transformer block (in
    ``transformer_blocks[b].norm1.emb.class_embedder``); block 0's also conditions the output layer.

    Raises:
        DenoiserError: when the model has none (it is not class-conditional).
    """
    embedders = [module for module in transformer.modules() if isinstance(module, LabelEmbedding)]
    if not embedders:
        raise DenoiserError(
            f"{type(transformer).__name__} has no class-label embedding (diffusers LabelEmbedding): the 'diffusion' "
            "representation needs a class-conditional DiT (DiTTransformer2DModel with num_embeds_ada_norm, as "
            "trained by examples/train_latent_diffusion.py)."
        )
    return embedders


def _replace_rows(rows: torch.Tensor, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the first ``len(rows)`` embeddings become ``rows``; the rest (e.g. the null
    labels of a classifier-free-guidance batch) stay the table's."""
    if len(output) < len(rows):
        raise DenoiserError(f"The denoiser embedded {len(output)} labels but {len(rows)} class embeddings "
                                  "were given: call it on the batch the embeddings belong to.")
    rows = rows.to(device=output.device, dtype=output.dtype)
    return rows if len(output) == len(rows) else torch.cat([rows, output[len(rows):]])


@contextlib.contextmanager
def override_class_embeddings(embedders: Sequence[nn.Module], embeddings: torch.Tensor) -> Iterator[None]:
    """Within the block, the label embeddings of the first rows of every denoiser batch are ``embeddings``.

    Args:
        embedders: the model's label-embedding modules (:func:`class_embedders`).
        embeddings: ``(B, num_blocks, hidden)``, one embedding per sample and block (differentiable).
    """
    if embeddings.dim() != 3 or embeddings.shape[1] != len(embedders):
        raise DenoiserError(f"Class embeddings of shape {tuple(embeddings.shape)} do not fit a denoiser with "
                                  f"{len(embedders)} label embeddings: expected (N, {len(embedders)}, hidden).")
    handles = [embedder.register_forward_hook(functools.partial(_replace_rows, embeddings[:, block]))
               for block, embedder in enumerate(embedders)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
