"""Expert trajectories for trajectory matching (MTT, LatentMTT): training, storage and caching.

An expert is a network trained on ALL real samples of the matching space (pixels or latents) with
plain SGD (constant learning rate, no momentum, no weight decay), as in MTT's ``buffer.py``. Its
trajectory is the flattened parameter vector after initialisation and after every epoch (parameters
only, in ``module.parameters()`` order; no buffers). An :class:`ExpertBuffer` holds the trajectories
of several experts as one ``(num_experts, epochs + 1, num_params)`` tensor plus the *recipe* that
produced them (network, data fingerprint, optimiser settings, seed).

On disk a buffer is a folder with ``trajectories.safetensors`` and ``recipe.json``, written
atomically. :meth:`ExpertBuffer.cached` keys such folders by the recipe, so runs that need the same
experts train them once; while a buffer is being built, every finished expert is saved on its own,
so an interrupted build resumes at the first missing expert.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from accelerate import PartialState
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from ...augment import DifferentiableSiameseAugmentation
from ...checkpointing import (
    atomic_directory,
    atomic_save_safetensors,
    atomic_write_json,
)
from ...distributed import (
    all_gather_rows,
    all_shard_bounds,
    min_across_processes,
    shard_bounds,
)
from ...networks import get_network
from ...representations import RealPool
from ...seeding import derive_seed, generator_for, seeded

PathLike = Union[str, Path]
TRAJECTORIES_FILE = "trajectories.safetensors"
RECIPE_FILE = "recipe.json"


class ExpertBufferError(ValueError):
    """Raised when an expert buffer is missing, inconsistent or unsuitable; the message says why."""


@dataclass(frozen=True)
class ParameterLayout:
    """How a network's parameters map to one flat vector (the format of trajectory snapshots).

    Args:
        names: parameter names, in ``module.named_parameters()`` order.
        shapes: the shape of each parameter.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, module: nn.Module) -> "ParameterLayout":
        """The layout of ``module``'s parameters."""
        named = list(module.named_parameters())
        return cls(tuple(name for name, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def sizes(self) -> list[int]:
        return [int(torch.Size(shape).numel()) for shape in self.shapes]

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def flatten(self, module: nn.Module) -> torch.Tensor:
        """The detached parameters of ``module`` as one float32 CPU vector."""
        return torch.cat([p.detach().reshape(-1).float().cpu() for p in module.parameters()])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a flat vector as a ``{name: tensor}`` dict for ``torch.func.functional_call``.

        Raises:
            ExpertBufferError: when the vector's length does not match the layout.
        """
        if vector.numel() != self.numel:
            raise ExpertBufferError(
                f"A parameter vector of {vector.numel()} values does not fit a network of {self.numel} parameters: "
                "the trajectories were recorded with another architecture (check network and network_kwargs)."
            )
        pieces = vector.split(self.sizes)
        return {name: piece.view(shape) for name, piece, shape in zip(self.names, pieces, self.shapes)}


def recipe_key(recipe: dict[str, Any]) -> str:
    """A stable hash of a JSON recipe."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:20]


def expert_recipe(real: RealPool, network: str, network_kwargs: dict, num_experts: int, epochs: int,
                  lr: float = 0.01, batch_size: int = 256, augment: Optional[str] = None,
                  seed: int = 0) -> dict[str, Any]:
    """Everything that determines a set of expert trajectories, as a JSON-ready dict.

    Args: as :func:`train_expert_trajectories`.

    Returns:
        The recipe, including the real data's fingerprint and sample shape.
    """
    sample_shape = [int(size) for size in real.samples.shape[1:]]
    recipe = {
        "network": network, "network_kwargs": dict(network_kwargs), "sample_shape": sample_shape,
        "num_classes": int(real.num_classes), "num_experts": int(num_experts), "epochs": int(epochs),
        "lr": float(lr), "batch_size": int(batch_size), "augmentation": augment, "seed": int(seed),
        "data_fingerprint": real.fingerprint,
    }
    return json.loads(json.dumps(recipe))


def _without_count(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recipe minus ``num_experts`` (expert ``i`` does not depend on how many are trained)."""
    return {key: value for key, value in recipe.items() if key != "num_experts"}


@dataclass
class ExpertBuffer:
    """Expert trajectories and the recipe that produced them.

    Args:
        trajectories: ``(num_experts, epochs + 1, num_params)`` float32 flat parameter snapshots;
            snapshot 0 is the initialisation, snapshot ``e`` the parameters after epoch ``e``.
        recipe: the JSON recipe (see :func:`expert_recipe`).
    """

    trajectories: torch.Tensor
    recipe: dict[str, Any]

    def __post_init__(self) -> None:
        if self.trajectories.dim() != 3:
            raise ExpertBufferError(
                "Trajectories must be (num_experts, epochs + 1, num_params), got shape "
                f"{tuple(self.trajectories.shape)}.")

    @property
    def num_experts(self) -> int:
        return self.trajectories.shape[0]

    @property
    def epochs(self) -> int:
        """Training epochs per expert (snapshots minus one)."""
        return self.trajectories.shape[1] - 1

    @property
    def num_params(self) -> int:
        return self.trajectories.shape[2]

    def snapshot(self, expert: int, epoch: int) -> torch.Tensor:
        """The flat parameters of ``expert`` after ``epoch`` epochs (0: initialisation)."""
        return self.trajectories[expert, epoch]

    def save(self, folder: PathLike) -> None:
        """Writes ``trajectories.safetensors`` and ``recipe.json`` to ``folder`` atomically."""
        with atomic_directory(folder) as staging:
            atomic_save_safetensors({"trajectories": self.trajectories}, staging / TRAJECTORIES_FILE)
            atomic_write_json(self.recipe, staging / RECIPE_FILE)

    @classmethod
    def load(cls, folder: PathLike) -> "ExpertBuffer":
        """Reads a buffer written by :meth:`save`.

        Raises:
            ExpertBufferError: when files are missing or the tensor does not match the recipe.
        """
        folder = Path(folder)
        if not (folder / TRAJECTORIES_FILE).exists() or not (folder / RECIPE_FILE).exists():
            raise ExpertBufferError(
                f"{folder} holds no expert buffer (expected {TRAJECTORIES_FILE} and {RECIPE_FILE}); "
                "build one with train_expert_trajectories(...).save(folder).")
        recipe = json.loads((folder / RECIPE_FILE).read_text())
        trajectories = load_file(str(folder / TRAJECTORIES_FILE))["trajectories"]
        count, epochs = recipe.get("num_experts"), recipe.get("epochs")
        if count is not None and epochs is not None and tuple(trajectories.shape[:2]) != (count, epochs + 1):
            raise ExpertBufferError(
                f"{folder} holds trajectories of shape {tuple(trajectories.shape)} but its recipe asks for "
                f"{count} experts of {epochs + 1} snapshots: the folder is corrupt, delete it to rebuild.")
        return cls(trajectories, recipe)

    @classmethod
    def cached(cls, work_dir: Optional[PathLike], recipe: dict[str, Any],
               build_fn: Callable[[Optional[Path]], "ExpertBuffer"],
               state: Optional[PartialState] = None) -> "ExpertBuffer":
        """Loads the buffer of ``recipe`` from ``work_dir``, or builds and stores it.

        Every process must call it: the entry is used only when every process can read it, else all
        of them build together (``build_fn`` may share the experts out) and the main process stores
        the result.

        Args:
            work_dir: folder of cached buffers (``None``: build in memory, store nothing).
            recipe: the recipe (see :func:`expert_recipe`); its hash names the cache entry.
            build_fn: builds the buffer; it receives a folder where it may save finished experts
                to resume from (``None`` without ``work_dir``), e.g.
                ``lambda folder: train_expert_trajectories(..., checkpoint_dir=folder)``.
            state: the process state (``None``: ``PartialState()``).

        Returns:
            The buffer, the same on every process.
        """
        if work_dir is None:
            return build_fn(None)
        state = state or PartialState()
        recipe = json.loads(json.dumps(recipe))  # compare as stored: tuples become lists
        folder = Path(work_dir) / f"experts-{recipe.get('network', 'network')}-{recipe_key(recipe)}"
        buffer = None
        if (folder / RECIPE_FILE).exists():
            try:
                buffer = cls.load(folder)
            except Exception:  # a corrupt entry is rebuilt
                buffer = None
            if buffer is not None and buffer.recipe != recipe:
                buffer = None
        if min_across_processes(int(buffer is not None), state) == 1:
            return buffer
        partial = folder.with_name(folder.name + ".partial")
        buffer = build_fn(partial)
        if state.is_main_process:
            buffer.save(folder)
            shutil.rmtree(partial, ignore_errors=True)
        state.wait_for_everyone()
        return buffer


def _expert_file(folder: Path, index: int) -> Path:
    return folder / f"expert_{index:04d}.safetensors"


def _finished_experts(checkpoint_dir: Optional[Path], recipe: dict[str, Any], count: int) -> list[torch.Tensor]:
    """Trajectories already saved in ``checkpoint_dir`` for ``recipe``, in order, up to ``count``."""
    if checkpoint_dir is None or not (checkpoint_dir / RECIPE_FILE).exists():
        return []
    saved = json.loads((checkpoint_dir / RECIPE_FILE).read_text())
    if _without_count(saved) != _without_count(recipe):
        raise ExpertBufferError(
            f"{checkpoint_dir} holds experts of another recipe: pass an empty checkpoint_dir or delete that folder.")
    finished = []
    while len(finished) < count and _expert_file(checkpoint_dir, len(finished)).exists():
        finished.append(load_file(str(_expert_file(checkpoint_dir, len(finished))))["trajectory"])
    return finished


def expert_network(recipe: dict[str, Any], index: int) -> nn.Module:
    """The freshly initialised network of expert ``index`` (initialisation keyed by ``(seed, index)``)."""
    in_channels, resolution = recipe["sample_shape"][0], recipe["sample_shape"][-1]
    with seeded(recipe["seed"], "expert-init", index):
        return get_network(recipe["network"], in_channels, recipe["num_classes"], resolution,
                           **recipe["network_kwargs"])


def train_expert(real: RealPool, recipe: dict[str, Any], index: int) -> torch.Tensor:
    """Trains expert ``index`` of ``recipe``; returns its ``(epochs + 1, num_params)`` trajectory.

    The initialisation, the data order and the augmentation are keyed by ``(seed, index, epoch)``,
    so an expert is the same whether it is trained alone or among others.
    """
    network = expert_network(recipe, index).to(real.device)
    network.train()
    layout = ParameterLayout.of(network)
    augment = DifferentiableSiameseAugmentation(recipe["augmentation"]) if recipe["augmentation"] else None
    optimizer = torch.optim.SGD(network.parameters(), lr=recipe["lr"], momentum=0.0, weight_decay=0.0)
    snapshots = [layout.flatten(network)]
    for epoch in range(recipe["epochs"]):
        batches = real.batches(recipe["batch_size"], generator_for(recipe["seed"], "expert-order", index, epoch))
        for batch, (inputs, labels) in enumerate(batches):
            if augment is not None:
                inputs = augment(inputs, seed=derive_seed(recipe["seed"], "expert-augment", index, epoch, batch),
                                 per_sample=True)
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(network(inputs), labels).backward()
            optimizer.step()
        snapshots.append(layout.flatten(network))
    return torch.stack(snapshots)


def train_expert_trajectories(real: RealPool, network: str, network_kwargs: dict, num_experts: int, epochs: int,
                              lr: float = 0.01, batch_size: int = 256, augment: Optional[str] = None, seed: int = 0,
                              progress: bool = True, checkpoint_dir: Optional[PathLike] = None,
                              state: Optional[PartialState] = None) -> ExpertBuffer:
    """Trains ``num_experts`` networks on all of ``real`` and records their trajectories (MTT's buffer).

    With several processes the experts still to train are shared out (each process trains a
    contiguous share) and gathered, so every process returns the same buffer; an expert is keyed by
    its index, so the buffer does not depend on the number of processes.

    Args:
        real: real samples of the matching space (images or latents).
        network: network name (see :func:`~latent_distill.networks.list_networks`).
        network_kwargs: architecture options.
        num_experts: number of experts.
        epochs: epochs per expert (snapshots: ``epochs + 1``).
        lr: constant SGD learning rate (no momentum, no weight decay).
        batch_size: minibatch size.
        augment: DSA strategy applied to every minibatch (per-sample parameters), or ``None``.
        seed: seed of initialisations, data order and augmentation.
        progress: show a progress bar over this process's experts.
        checkpoint_dir: folder where each finished expert is saved; experts already there (same
            recipe, any number of experts) are loaded instead of trained.
        state: the process state (``None``: ``PartialState()``); every process must call this.

    Returns:
        The :class:`ExpertBuffer`.

    Raises:
        ExpertBufferError: when ``checkpoint_dir`` holds experts of another recipe.
    """
    if num_experts < 1 or epochs < 1:
        raise ExpertBufferError(f"num_experts and epochs must be at least 1, got {num_experts} and {epochs}.")
    state = state or PartialState()
    recipe = expert_recipe(real, network, network_kwargs, num_experts, epochs, lr, batch_size, augment, seed)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    # Every process agrees on how many experts are finished (the folder may be local to each machine).
    finished = _finished_experts(checkpoint_dir, recipe, num_experts)
    done = min_across_processes(len(finished), state)
    finished = finished[:done]
    if checkpoint_dir is not None and state.is_main_process:
        atomic_write_json(recipe, checkpoint_dir / RECIPE_FILE)
    start, stop = shard_bounds(num_experts - done, state)
    mine = range(done + start, done + stop)
    local = []
    for index in tqdm(mine, disable=not progress, leave=False, desc=f"experts {network}"):
        trajectory = train_expert(real, recipe, index)
        if checkpoint_dir is not None:
            atomic_save_safetensors({"trajectory": trajectory}, _expert_file(checkpoint_dir, index))
        local.append(trajectory)
    if done < num_experts:
        if local:
            local_stack = torch.stack(local)
        else:  # a process with no expert to train still takes part in the gather
            local_stack = torch.empty((0, epochs + 1, ParameterLayout.of(expert_network(recipe, 0)).numel))
        bounds = [(done + start, done + stop) for start, stop in all_shard_bounds(num_experts - done,
                                                                                    state.num_processes)]
        finished += list(all_gather_rows(local_stack, bounds, state))
    return ExpertBuffer(torch.stack(finished), recipe)
