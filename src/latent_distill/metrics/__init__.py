"""``evaluate`` modules shipped with the library, loadable with ``evaluate.load(<path>)``."""

from pathlib import Path

DISTILLED_ACCURACY_PATH = str(Path(__file__).parent / "distilled_accuracy")

__all__ = ["DISTILLED_ACCURACY_PATH"]
