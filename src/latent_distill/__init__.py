"""latent-distill: dataset distillation in the latent space of pretrained autoencoders and diffusion models."""

from .augment import list_augmentations, list_mixings
from .codec import LatentCache, LatentCodec
from .config import BudgetError, DistillationConfig, samples_per_class_for_budget
from .d3hr import D3HRConfig
from .data import (
    FASHION_MNIST_HUB_ID,
    DataError,
    ImageClassificationTensors,
    dataset_to_tensors,
    fashion_mnist_tensors,
    float_to_uint8,
    load_fashion_mnist,
    uint8_to_float,
)
from .default_models import (
    DEFAULT_PIPELINE_PATH,
    FASHION_MNIST_14X14_PIPELINE_PATH,
    SHIPPED_PIPELINES,
    shipped_pipeline_path,
)
from .distilled import DistilledDataset
from .evaluation import (
    EvaluationResult,
    HardLabelProtocol,
    SoftLabelProtocol,
    evaluate_synthetic,
    list_eval_augmentations,
    list_protocols,
    random_subset,
    random_subset_reference,
)
from .networks import get_network, list_networks, register_network
from .objectives import get_objective, list_objectives, register_objective
from .pipelines import (
    D3HROutput,
    D3HRPipeline,
    LatentDistillationOutput,
    LatentDistillationPipeline,
)
from .presets import config_for_method, list_presets
from .representations import (
    get_representation,
    list_representations,
    list_skip_connections,
    register_representation,
)

__version__ = "0.1.0"

__all__ = [
    "BudgetError",
    "D3HRConfig",
    "D3HROutput",
    "D3HRPipeline",
    "DEFAULT_PIPELINE_PATH",
    "FASHION_MNIST_14X14_PIPELINE_PATH",
    "SHIPPED_PIPELINES",
    "DataError",
    "DistillationConfig",
    "DistilledDataset",
    "EvaluationResult",
    "FASHION_MNIST_HUB_ID",
    "HardLabelProtocol",
    "ImageClassificationTensors",
    "LatentCache",
    "LatentCodec",
    "LatentDistillationOutput",
    "LatentDistillationPipeline",
    "SoftLabelProtocol",
    "config_for_method",
    "dataset_to_tensors",
    "evaluate_synthetic",
    "fashion_mnist_tensors",
    "float_to_uint8",
    "get_network",
    "get_objective",
    "get_representation",
    "list_augmentations",
    "list_eval_augmentations",
    "list_mixings",
    "list_networks",
    "list_objectives",
    "list_presets",
    "list_protocols",
    "list_representations",
    "list_skip_connections",
    "load_fashion_mnist",
    "random_subset",
    "random_subset_reference",
    "register_network",
    "register_objective",
    "register_representation",
    "samples_per_class_for_budget",
    "shipped_pipeline_path",
    "uint8_to_float",
]
