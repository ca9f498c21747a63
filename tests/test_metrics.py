import evaluate
import pytest

from latent_distill.metrics import DISTILLED_ACCURACY_PATH


def test_evaluate_module_loads_from_its_folder_and_scores(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(DISTILLED_ACCURACY_PATH)
    result = metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2],
                            random_subset_accuracy=50.0, full_data_accuracy=100.0)
    assert result == {"accuracy": 75.0, "relative_score": 0.5}
    assert metric.compute(predictions=[1, 1], references=[0, 1]) == {"accuracy": 50.0}
    with pytest.raises(ValueError, match="must exceed"):
        metric.compute(predictions=[1], references=[1], random_subset_accuracy=90.0, full_data_accuracy=80.0)
