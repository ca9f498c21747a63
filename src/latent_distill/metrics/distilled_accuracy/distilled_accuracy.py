"""``evaluate`` module: accuracy of a student trained on a distilled set, with its relative score.

Load it from this folder (no network needed)::

    import evaluate
    from latent_distill.metrics import DISTILLED_ACCURACY_PATH

    metric = evaluate.load(DISTILLED_ACCURACY_PATH)
    metric.compute(predictions=student_predictions, references=test_labels,
                   random_subset_accuracy=76.3, full_data_accuracy=92.9)

The distillation-level protocol (training several students, the references) lives in
``latent_distill.evaluation``; this module scores the final predictions the way ``evaluate`` users
compare models, and adds the relative score
``(accuracy - random subset) / (full data - random subset)`` when the references are given.
"""

from __future__ import annotations

from typing import Optional

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Top-1 accuracy (percent) of a model trained on a distilled dataset, tested on the real test set."
_INPUTS = """
Args:
    predictions (list of int): predicted class indices on the real test set.
    references (list of int): true class indices.
    random_subset_accuracy (float, optional): accuracy (percent) of the random real subset with the same
        storage budget, trained with the same protocol.
    full_data_accuracy (float, optional): accuracy (percent) with the whole training set, same protocol.
Returns:
    accuracy (float): percent of correct predictions.
    relative_score (float, only with both references): (accuracy - random) / (full - random).
"""
_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class DistilledAccuracy(evaluate.Metric):
    """Accuracy of a student trained on distilled data, with the relative score against references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, random_subset_accuracy: Optional[float] = None,
                 full_data_accuracy: Optional[float] = None) -> dict:
        predictions, references = np.asarray(predictions), np.asarray(references)
        accuracy = float(100.0 * (predictions == references).mean()) if len(references) else 0.0
        result = {"accuracy": accuracy}
        if random_subset_accuracy is not None and full_data_accuracy is not None:
            gap = full_data_accuracy - random_subset_accuracy
            if gap <= 0:
                raise ValueError(f"full_data_accuracy ({full_data_accuracy}) must exceed random_subset_accuracy "
                                 f"({random_subset_accuracy}) for a relative score.")
            result["relative_score"] = (accuracy - random_subset_accuracy) / gap
        return result
