"""Data in: HF ``datasets`` image-classification splits (or tensors) to checked ``uint8`` splits.

- ``fashion_mnist.py``: the offline default from Debian's idx files;
- ``columns.py``: image/label column detection, class names encoded as labels;
- ``images.py``: preprocessing of any PIL image, row-by-row decoding, ``uint8`` <-> float;
- ``splits.py``: splits in memory or streamed from their table, and their checks;
- ``loading.py``: what the pipelines and examples call to get training and evaluation splits.
"""

from .columns import (
    STRING_DTYPES,
    column_class_names,
    detect_columns,
    encode_string_labels,
)
from .errors import (
    DataError,
)
from .fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_HUB_ID,
    fashion_mnist_arrays,
    fashion_mnist_tensors,
    load_fashion_mnist,
)
from .images import (
    ImagePreprocessor,
    check_image_tensor,
    decoded_images,
    float_to_uint8,
    uint8_to_float,
)
from .loading import (
    DEFAULT_DATASET,
    EVALUATION_SPLIT_NAMES,
    DatasetLike,
    dataset_id,
    dataset_to_tensors,
    evaluation_split,
    load_image_classification,
    source_record,
    streamed_training_split,
    training_tensors,
)
from .splits import (
    ImageClassificationTensors,
    LabelledSplit,
    StreamedImageClassification,
    TrainingSplit,
    check_label_tensor,
    check_training_labels,
    table_fingerprint,
)

__all__ = [
    "DEFAULT_DATASET",
    "DataError",
    "DatasetLike",
    "EVALUATION_SPLIT_NAMES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_HUB_ID",
    "ImageClassificationTensors",
    "ImagePreprocessor",
    "LabelledSplit",
    "STRING_DTYPES",
    "StreamedImageClassification",
    "TrainingSplit",
    "check_image_tensor",
    "check_label_tensor",
    "check_training_labels",
    "column_class_names",
    "dataset_id",
    "dataset_to_tensors",
    "decoded_images",
    "detect_columns",
    "encode_string_labels",
    "evaluation_split",
    "fashion_mnist_arrays",
    "fashion_mnist_tensors",
    "float_to_uint8",
    "load_fashion_mnist",
    "load_image_classification",
    "source_record",
    "streamed_training_split",
    "table_fingerprint",
    "training_tensors",
    "uint8_to_float",
]
