"""Distilled datasets as Hugging Face dataset repositories.

Every method of the library (latent or pixel distillation, LD3M, D3HR) ends in one
:class:`DistilledDataset`, and every distilled dataset is published with the same layout::

    <folder>/
      README.md                            dataset card: YAML (configs, license, tags) + recipe,
                                           storage budget, evaluation, preview, usage; rendered
                                           from latent_distill/templates/distilled_dataset_card.md
      distillation_config.json             schema version, method, class names, every hyper-parameter
      preview.png                          one row per class, up to 10 samples each (when images exist)
      latents/train-00000-of-00001.parquet    latent (Array3D float32), label (ClassLabel) [, soft_label]
                                              [, class_embedding (Array2D float32): LD3M sets]
      images/train-00000-of-00001.parquet     image (Image, PNG), label (ClassLabel) [, soft_label]
      gaussians/train-00000-of-00001.parquet  one row per class: label, mean, std, timestep,
                                              latent_shape [, group_seed]

Only the configs the method produced are written. The repository is plain parquet plus YAML, so
``datasets.load_dataset(repo, "<config>", split="train")`` reads it without this library; turning
latents or Gaussians into pixels is done by the pipelines (``LatentDistillationPipeline.decode`` /
``rerender``, ``D3HRPipeline.regenerate``), never by the repository, and this package does not
import them.

Modules: ``dataset`` (the set, its checks and storage accounting), ``validation`` (field checks),
``tables`` (one ``datasets.Dataset`` per config), ``storage`` (the folder: write, read, metadata),
``upload`` (``push_to_hub``), ``card`` (the dataset card), ``preview`` (the preview grid), ``png``
(lossless image encoding), ``layout`` (file names, schema version), ``errors``.
"""

from .card import card_data, card_template, render_card
from .dataset import DistilledDataset
from .errors import DistilledDatasetError, HubUploadError
from .layout import CONFIG_FILE, SCHEMA_VERSION
from .png import decode_png, encode_png
from .preview import preview_grid
from .storage import read_metadata

__all__ = [
    "CONFIG_FILE",
    "SCHEMA_VERSION",
    "DistilledDataset",
    "DistilledDatasetError",
    "HubUploadError",
    "card_data",
    "card_template",
    "decode_png",
    "encode_png",
    "preview_grid",
    "read_metadata",
    "render_card",
]
