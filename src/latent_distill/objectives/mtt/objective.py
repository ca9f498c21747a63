"""Trajectory matching: MTT (Cazenavette et al. 2022) and LatentMTT (Dataset Distillation in Latent
Space, Eq. 9, Algorithm 3).

``setup`` trains (or loads from the cache) expert trajectories on the real samples of the matching
space (:mod:`.trajectories`). Each iteration then:

1. picks a random expert and a start epoch ``t < max_start_epoch`` (MTT's ``randint(0, T+)``);
2. initialises a student at ``theta*_t`` and takes ``syn_steps`` SGD steps on minibatches of the
   synthetic set (``batch_syn`` samples of any class, all when ``None``; augmented sample by sample
   when configured, as MTT) with a learnable learning rate, through ``torch.func.functional_call``;
3. minimises ``||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2`` w.r.t. the synthetic
   samples (the pipeline's optimiser) and the learning rate (its own SGD, lr ``lr_lr``, momentum
   0.5).

``memory="tesla"`` computes the same gradients with activation memory independent of
``syn_steps`` (see :mod:`.student`).

MTT is not class-separable: the student trains on all classes at once, so ``iteration`` must be
given every class (a run cannot split classes over processes, unlike DC and DM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from accelerate import PartialState

from ...seeding import derive_seed, generator_for
from ..base import MatchingObjective, ObjectiveConfigError, register_objective
from .student import (
    FlatStudent,
    StudentPlan,
    constant_memory_gradients,
    unrolled_matching_loss,
)
from .trajectories import (
    ExpertBuffer,
    ExpertBufferError,
    expert_recipe,
    train_expert_trajectories,
)

MEMORY_MODES = ("full", "tesla")
LR_PARAMETRIZATIONS = ("plain", "log")
#: momentum of the learning-rate optimiser (MTT).
LR_MOMENTUM = 0.5


@dataclass
class MTTObjectiveConfig:
    """Hyper-parameters of trajectory matching (``config.objective_kwargs`` of ``objective="mtt"``).

    Defaults are MTT's (``distill.py`` and ``buffer.py``).

    Args:
        num_experts: expert trajectories in the buffer.
        expert_epochs: M, expert epochs between the start and the target snapshot.
        syn_steps: N, student SGD steps on the synthetic set per iteration.
        max_start_epoch: T+, start epochs are drawn from ``0 .. max_start_epoch - 1``.
        buffer_epochs: epochs per expert; ``None`` trains exactly the
            ``max_start_epoch - 1 + expert_epochs`` epochs the matching reads.
        lr_teacher: initial student learning rate.
        lr_lr: learning rate of the student learning rate (lambda in Dataset Distillation in Latent
            Space).
        batch_syn: synthetic samples per student step; ``None`` uses the whole set.
        memory: ``"full"`` (back-propagate the unrolled student) or ``"tesla"`` (same gradients,
            activation memory of one student step).
        lr_parametrization: ``"plain"`` (MTT: the learning rate itself is learned) or ``"log"``
            (its logarithm is, which keeps it positive).
        expert_lr: constant SGD learning rate of the experts.
        expert_batch_size: minibatch size of the experts.
        expert_seed: seed of the experts (independent of the distillation seed, so runs with
            different seeds share one buffer).
    """

    num_experts: int = 100
    expert_epochs: int = 3
    syn_steps: int = 20
    max_start_epoch: int = 25
    buffer_epochs: Optional[int] = None
    lr_teacher: float = 0.01
    lr_lr: float = 1e-5
    batch_syn: Optional[int] = None
    memory: str = "full"
    lr_parametrization: str = "plain"
    expert_lr: float = 0.01
    expert_batch_size: int = 256
    expert_seed: int = 0

    def __post_init__(self) -> None:
        counts = {"num_experts": self.num_experts, "expert_epochs": self.expert_epochs, "syn_steps": self.syn_steps,
                  "max_start_epoch": self.max_start_epoch, "expert_batch_size": self.expert_batch_size}
        low = [f"{name}={value}" for name, value in counts.items() if value < 1]
        if low:
            raise ObjectiveConfigError(f"{', '.join(low)}: these MTT options must be at least 1.")
        if self.memory not in MEMORY_MODES:
            raise ObjectiveConfigError(f"memory must be one of {MEMORY_MODES}, got {self.memory!r}.")
        if self.lr_parametrization not in LR_PARAMETRIZATIONS:
            raise ObjectiveConfigError(
                f"lr_parametrization must be one of {LR_PARAMETRIZATIONS}, got {self.lr_parametrization!r}.")
        if self.lr_teacher <= 0 or self.expert_lr <= 0:
            raise ObjectiveConfigError(
                f"lr_teacher and expert_lr must be positive, got {self.lr_teacher} and {self.expert_lr}.")
        if self.batch_syn is not None and self.batch_syn < 1:
            raise ObjectiveConfigError(
                f"batch_syn must be at least 1 (or None for the whole set), got {self.batch_syn}.")
        if self.buffer_epochs is not None and self.buffer_epochs < self.required_epochs:
            raise ObjectiveConfigError(
                f"buffer_epochs={self.buffer_epochs} is too short: start epochs up to {self.max_start_epoch - 1} plus "
                f"expert_epochs={self.expert_epochs} need {self.required_epochs}; raise buffer_epochs or lower "
                "max_start_epoch / expert_epochs.")

    @property
    def required_epochs(self) -> int:
        """The last expert epoch the matching reads: ``max_start_epoch - 1 + expert_epochs``."""
        return self.max_start_epoch - 1 + self.expert_epochs

    @property
    def trained_epochs(self) -> int:
        """Epochs each expert is trained for."""
        return self.buffer_epochs if self.buffer_epochs is not None else self.required_epochs


@register_objective("mtt")
class TrajectoryMatching(MatchingObjective):
    """Matching of student and expert parameter trajectories, with a learnable student learning rate."""

    options_class = MTTObjectiveConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.student = FlatStudent(self.build_network("mtt-student"))
        initial = self.options.lr_teacher
        if self.options.lr_parametrization == "log":
            initial = math.log(initial)
        self.lr_parameter = torch.tensor(float(initial), device=self.device, requires_grad=True)
        self.lr_optimizer = torch.optim.SGD([self.lr_parameter], lr=self.options.lr_lr, momentum=LR_MOMENTUM)
        self.buffer: Optional[ExpertBuffer] = None

    # -- state ---------------------------------------------------------------------------------

    def student_lr(self) -> torch.Tensor:
        """The student learning rate, differentiable w.r.t. the learned parameter."""
        return self.lr_parameter.exp() if self.options.lr_parametrization == "log" else self.lr_parameter

    def state_dict(self):
        return {"lr_parameter": self.lr_parameter.detach().clone(), "lr_optimizer": self.lr_optimizer.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.lr_parameter.copy_(state["lr_parameter"].to(self.device))
        self.lr_optimizer.load_state_dict(state["lr_optimizer"])

    def summary(self):
        """The learned student learning rate (the evaluation learning rate of MTT) and the buffer used."""
        values = {"student_learning_rate": self.student_lr().item(),
                  "lr_parametrization": self.options.lr_parametrization}
        if self.buffer is not None:
            values.update(num_experts=self.buffer.num_experts, buffer_epochs=self.buffer.epochs)
        return values

    # -- experts -------------------------------------------------------------------------------

    def setup(self, real, work_dir):
        """Loads the expert buffer of this run's recipe from ``work_dir/experts``, or trains it there."""
        options = self.options
        experts = dict(network=self.config.network, network_kwargs=self.config.network_kwargs,
                       num_experts=options.num_experts, epochs=options.trained_epochs, lr=options.expert_lr,
                       batch_size=options.expert_batch_size, augment=self.config.augmentation,
                       seed=options.expert_seed)

        def build(folder: Optional[Path]) -> ExpertBuffer:
            return train_expert_trajectories(real, **experts, checkpoint_dir=folder)

        cache = Path(work_dir) / "experts" if work_dir is not None else None
        # With several processes the experts are shared out among them (train_expert_trajectories
        # gathers them); the main process writes the cache entry.
        self.use_buffer(ExpertBuffer.cached(cache, expert_recipe(real, **experts), build, PartialState()))

    def use_buffer(self, buffer: ExpertBuffer) -> None:
        """Matches against ``buffer`` from now on.

        Raises:
            ExpertBufferError: when its parameters do not fit the student network, or its experts
                are shorter than ``max_start_epoch - 1 + expert_epochs`` epochs.
        """
        if buffer.num_params != self.student.layout.numel:
            raise ExpertBufferError(
                f"The buffer's experts have {buffer.num_params} parameters but the student network "
                f"({self.config.network}, {self.config.network_kwargs}) has {self.student.layout.numel}: "
                "use the network the experts were trained with.")
        if buffer.epochs < self.options.required_epochs:
            raise ExpertBufferError(
                f"The buffer's experts have {buffer.epochs} epochs; matching needs {self.options.required_epochs} "
                "(max_start_epoch - 1 + expert_epochs): lower them or train longer experts.")
        self.buffer = buffer

    # -- one iteration -------------------------------------------------------------------------

    def segment(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The expert snapshots ``(theta*_t, theta*_{t+M})`` of iteration ``step``."""
        generator = generator_for(self.config.seed, "mtt-segment", step)
        expert = int(torch.randint(self.buffer.num_experts, (1,), generator=generator))
        start = int(torch.randint(self.options.max_start_epoch, (1,), generator=generator))
        return (self.buffer.snapshot(expert, start).to(self.device),
                self.buffer.snapshot(expert, start + self.options.expert_epochs).to(self.device))

    def plan(self, step: int, set_size: int) -> StudentPlan:
        """The student minibatches of iteration ``step``: passes over random permutations of the set
        cut into ``batch_syn`` chunks (MTT)."""
        generator = generator_for(self.config.seed, "mtt-batches", step)
        batch = self.options.batch_syn or set_size
        indices: list[torch.Tensor] = []
        chunks: list[torch.Tensor] = []
        for _ in range(self.options.syn_steps):
            if not chunks:
                chunks = list(torch.randperm(set_size, generator=generator).split(batch))
            indices.append(chunks.pop())
        seeds = [derive_seed(self.config.seed, "mtt-augment", step, n) for n in range(self.options.syn_steps)]
        return StudentPlan(indices, seeds, self.augment_per_sample if self.augment is not None else None)

    def iteration(self, synthetic, real, optimizer, step, classes):
        """One student unroll against a random expert segment; returns the normalised distance.

        ``classes`` must hold every class (MTT trains the student on the whole synthetic set).
        """
        if self.buffer is None:
            raise ExpertBufferError("No expert buffer: call setup(real, work_dir) (or use_buffer) before iterating.")
        if sorted(classes) != list(range(self.num_classes)):
            raise ObjectiveConfigError(
                f"MTT trains its student on every class at once but was given classes {list(classes)}: run it "
                "in one process over all classes.")
        parts = [synthetic.render(class_index) for class_index in classes]
        data = torch.cat(parts)
        labels = torch.cat([torch.full((len(part),), c, dtype=torch.long, device=part.device)
                            for c, part in zip(classes, parts)])
        start, target = self.segment(step)
        plan = self.plan(step, len(data))
        leaves = [p for group in optimizer.param_groups for p in group["params"]] + [self.lr_parameter]
        optimizer.zero_grad(set_to_none=True)
        self.lr_optimizer.zero_grad(set_to_none=True)
        lr = self.student_lr()
        if self.options.memory == "full":
            loss = unrolled_matching_loss(self.student, data, labels, plan, start, target, lr)
            torch.autograd.backward(loss, inputs=leaves)
            value = loss.item()
        else:
            value, data_gradient, lr_gradient = constant_memory_gradients(
                self.student, data, labels, plan, start, target, lr.item())
            torch.autograd.backward([data, lr], [data_gradient, lr_gradient], inputs=leaves)
        optimizer.step()
        self.lr_optimizer.step()
        return value
