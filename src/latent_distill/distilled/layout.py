"""The files of a distilled-dataset repository (see the package docstring) and their schema version."""

SCHEMA_VERSION = 1
CONFIG_FILE = "distillation_config.json"
CARD_FILE = "README.md"
PREVIEW_FILE = "preview.png"
DATA_FILE = "{config}/train-00000-of-00001.parquet"
DATA_GLOB = "{config}/train-*.parquet"
CONFIG_ORDER = ("latents", "images", "gaussians")

#: The per-class integers of a D3HR set that name its kept groups (8 bytes each in the storage count).
GROUP_REFERENCE_KEYS = ("group_seeds", "group_indices", "chunk_counts")
