"""The student of trajectory matching: SGD on the synthetic set, differentiated w.r.t. the set.

The student starts from an expert snapshot ``theta_0`` and takes ``N`` SGD steps
``theta_{n+1} = theta_n - lr * grad CE(theta_n; X_n)`` on minibatches ``X_n`` of the synthetic set;
the matching loss is ``||theta_N - theta*_{t+M}||^2 / ||theta_0 - theta*_{t+M}||^2`` (Dataset
Distillation in Latent Space, Eq. 9; MTT). Two ways compute its gradient w.r.t. the synthetic samples and ``lr``:

- :func:`unrolled_matching_loss` keeps the graph of all ``N`` steps and lets autograd
  back-propagate (MTT); memory grows with ``N``.
- :func:`constant_memory_gradients` (TESLA-style) runs the steps without a graph, keeping only
  the parameter vectors, then walks back from step ``N - 1`` to ``0``, recomputing one step's graph
  at a time and carrying the adjoint ``dL/dtheta_n`` with a Hessian-vector product. Activation
  memory is that of one step. Unlike TESLA's published code, which leaves out how ``X_n`` moves the
  later steps, the adjoint keeps every term, so the gradient equals the full unroll's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .trajectories import ParameterLayout

LearningRate = Union[float, torch.Tensor]


class FlatStudent:
    """A network evaluated on flat parameter vectors (the format of expert snapshots).

    Args:
        network: the architecture; its own parameter values are never used.
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = network
        self.layout = ParameterLayout.of(network)

    def logits(self, theta: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.network, self.layout.unflatten(theta), (inputs,))

    def gradient(self, theta: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor,
                 create_graph: bool) -> torch.Tensor:
        """The gradient of the mean cross-entropy w.r.t. ``theta`` (which must require grad)."""
        loss = F.cross_entropy(self.logits(theta, inputs), labels)
        return torch.autograd.grad(loss, theta, create_graph=create_graph)[0]


@dataclass
class StudentPlan:
    """Which synthetic samples each student step sees, and how they are augmented.

    Args:
        indices: one index tensor per step (rows of the synthetic set).
        seeds: one augmentation seed per step.
        augment: siamese augmentation ``augment(x, seed)`` or ``None``; it must be deterministic
            given the seed (the constant-memory pass recomputes every step).
    """

    indices: Sequence[torch.Tensor]
    seeds: Sequence[int]
    augment: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None

    @property
    def steps(self) -> int:
        return len(self.indices)

    def batch(self, data: torch.Tensor, labels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (augmented) minibatch of student step ``step``."""
        inputs = data[self.indices[step]]
        if self.augment is not None:
            inputs = self.augment(inputs, self.seeds[step])
        return inputs, labels[self.indices[step]]


def normalized_parameter_distance(theta: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||theta - target||^2 / ||start - target||^2`` (1 when ``theta`` is ``start``).

    Raises:
        ValueError: when ``start`` equals ``target`` (the expert did not move; nothing to match).
    """
    scale = (start - target).pow(2).sum()
    if scale.item() == 0:
        raise ValueError("The expert's start and target snapshots are identical: the trajectory is flat "
                         "(check expert_epochs and the expert learning rate).")
    return (theta - target).pow(2).sum() / scale


def run_student(student: FlatStudent, data: torch.Tensor, labels: torch.Tensor, plan: StudentPlan,
                start: torch.Tensor, lr: LearningRate, create_graph: bool) -> list[torch.Tensor]:
    """The student's parameters ``[theta_0, ..., theta_N]``.

    Args:
        student: the network on flat parameters.
        data: the synthetic set (with grad when ``create_graph``).
        labels: its labels.
        plan: the minibatches of the ``N`` steps.
        start: ``theta_0``, an expert snapshot.
        lr: the student learning rate (a tensor with grad when ``create_graph``).
        create_graph: keep the graph of every step (for the full unroll); otherwise the returned
            vectors are detached.
    """
    thetas = [start.detach().clone().requires_grad_(True)]
    for step in range(plan.steps):
        inputs, targets = plan.batch(data, labels, step)
        theta = thetas[-1] if create_graph else thetas[-1].detach().requires_grad_(True)
        gradient = student.gradient(theta, inputs, targets, create_graph=create_graph)
        thetas.append(theta - lr * gradient if create_graph else (theta - lr * gradient).detach())
    return thetas


def unrolled_matching_loss(student: FlatStudent, data: torch.Tensor, labels: torch.Tensor, plan: StudentPlan,
                           start: torch.Tensor, target: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """The matching loss with the graph of all student steps (back-propagate it as usual)."""
    theta = run_student(student, data, labels, plan, start, lr, create_graph=True)[-1]
    return normalized_parameter_distance(theta, start, target)


def constant_memory_gradients(student: FlatStudent, data: torch.Tensor, labels: torch.Tensor, plan: StudentPlan,
                              start: torch.Tensor, target: torch.Tensor,
                              lr: float) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The matching loss and its exact gradients, holding one student step's graph at a time.

    Args:
        student, data, labels, plan, start, target: as :func:`unrolled_matching_loss`.
        lr: the student learning rate, a plain number.

    Returns:
        ``(loss, d loss / d data, d loss / d lr)``.
    """
    data, lr_value = data.detach(), float(lr)
    thetas = run_student(student, data, labels, plan, start, lr_value, create_graph=False)
    theta_final = thetas[-1].detach().requires_grad_(True)
    loss = normalized_parameter_distance(theta_final, start, target)
    adjoint = torch.autograd.grad(loss, theta_final)[0]
    data_leaf = data.requires_grad_(True)
    data_gradient = torch.zeros_like(data)
    lr_gradient = adjoint.new_zeros(())
    for step in reversed(range(plan.steps)):
        theta = thetas[step].detach().requires_grad_(True)
        inputs, targets = plan.batch(data_leaf, labels, step)
        gradient = student.gradient(theta, inputs, targets, create_graph=True)
        # theta_{n+1} = theta_n - lr * g(theta_n, X_n): push the adjoint of theta_{n+1} to lr, X_n, theta_n.
        lr_gradient -= (adjoint * gradient.detach()).sum()
        theta_vjp, data_vjp = torch.autograd.grad(gradient, (theta, data_leaf), grad_outputs=adjoint)
        data_gradient -= lr_value * data_vjp
        adjoint = adjoint - lr_value * theta_vjp
    return loss.item(), data_gradient, lr_gradient
