"""Train on distilled data, test on real data.

Two protocols, whose numbers must never be compared with each other: the hard-label protocol of
DC/DSA/DM/MTT/GLaD/LD3M/LatentDD (:class:`HardLabelProtocol`) and the soft-label protocol of
D3HR/RDED/SRe2L (:class:`SoftLabelProtocol`, with a teacher from :func:`train_teacher`).

One module per job:

* ``protocols.py``: the protocol dataclasses and their augmentation presets, both in registries
  (:func:`list_protocols`, :func:`list_eval_augmentations`), and :func:`protocol_from_dict`.
* ``training.py``: the training loops, :func:`accuracy`, :func:`evaluate_synthetic` and
  :class:`EvaluationResult`.
* ``references.py``: :func:`random_subset_reference` (random real images with the same per-class
  count) and :func:`full_data_reference` (the whole training set, cached on disk), both trained with
  the *same* protocol object as the distilled set.
* ``teachers.py``: :func:`train_teacher` and :func:`load_teacher` (teachers cached on disk).
* ``generative.py``: how good a class-conditional generator is through a classifier of the real data
  (:func:`class_fidelity`, :func:`frechet_distance` on :func:`classifier_features`, :func:`precision_recall`).
* ``common.py`` (error type, fingerprints) and ``threads.py`` (:func:`configure_threads`).
"""

from .common import EvaluationError, dataset_fingerprint
from .generative import (
    class_fidelity,
    classifier_features,
    frechet_distance,
    precision_recall,
)
from .protocols import (
    EVAL_AUGMENTATIONS,
    PROTOCOLS,
    AugmentationPreset,
    HardLabelProtocol,
    Protocol,
    SoftLabelProtocol,
    get_eval_augmentation,
    get_protocol,
    list_eval_augmentations,
    list_protocols,
    protocol_from_dict,
    register_eval_augmentation,
    register_protocol,
    soft_label_batch_size,
)
from .references import full_data_reference, random_subset, random_subset_reference
from .teachers import TEACHER_RECIPE, TEACHER_WEIGHTS, load_teacher, train_teacher
from .threads import configure_threads
from .training import (
    EvaluationResult,
    accuracy,
    default_test_batch_size,
    evaluate_synthetic,
)

__all__ = [
    "EVAL_AUGMENTATIONS",
    "PROTOCOLS",
    "TEACHER_RECIPE",
    "TEACHER_WEIGHTS",
    "AugmentationPreset",
    "EvaluationError",
    "EvaluationResult",
    "HardLabelProtocol",
    "Protocol",
    "SoftLabelProtocol",
    "accuracy",
    "class_fidelity",
    "classifier_features",
    "configure_threads",
    "dataset_fingerprint",
    "default_test_batch_size",
    "evaluate_synthetic",
    "frechet_distance",
    "full_data_reference",
    "get_eval_augmentation",
    "get_protocol",
    "list_eval_augmentations",
    "list_protocols",
    "load_teacher",
    "precision_recall",
    "protocol_from_dict",
    "random_subset",
    "random_subset_reference",
    "register_eval_augmentation",
    "register_protocol",
    "soft_label_batch_size",
    "train_teacher",
]
