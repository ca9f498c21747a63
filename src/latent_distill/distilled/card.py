"""The dataset card (``README.md``) of a distilled set, rendered from the template shipped in
``latent_distill/templates/``: YAML header (configs, license, tags, provenance), recipe, storage
budget, evaluation, preview and usage."""

from __future__ import annotations

import json
from importlib import resources as importlib_resources
from typing import TYPE_CHECKING, Any, Iterator, Optional

import datasets
from huggingface_hub import DatasetCard, DatasetCardData

from ..model_provenance import public_record
from .layout import (
    CONFIG_FILE,
    DATA_GLOB,
    GROUP_REFERENCE_KEYS,
    PREVIEW_FILE,
    SCHEMA_VERSION,
)
from .preview import PREVIEW_SAMPLES_PER_CLASS

if TYPE_CHECKING:
    from .dataset import DistilledDataset

TEMPLATE_PACKAGE = "latent_distill"
CARD_TEMPLATE = "templates/distilled_dataset_card.md"  # inside TEMPLATE_PACKAGE, so wheels ship it
_DATASET_KEYS = ("dataset", "source_dataset")


def _source_dataset(record: dict) -> Optional[dict]:
    """The source dataset named in the run record, as ``{"id", ...}``, or ``None``."""
    for key in _DATASET_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            return {"id": value}
        if isinstance(value, dict) and value.get("id"):
            return value
    return None


def _size_category(rows: int) -> str:
    """The Hub ``size_categories`` bucket of ``rows``."""
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return label
    return "n>1M"


def card_data(dataset: DistilledDataset) -> DatasetCardData:
    """The YAML header of the card: configs, license, tags, provenance."""
    names = dataset.config_names
    configs = [
        {"config_name": name, "data_files": [{"split": "train", "path": DATA_GLOB.format(config=name)}]}
        for name in names
    ]
    configs[0]["default"] = True
    source = _source_dataset(dataset.record)
    distillation = {
        "method": dataset.method,
        "ipc": dataset.ipc,
        "samples_per_class": dataset.samples_per_class,
        "budget": dataset.budget,
        "schema_version": SCHEMA_VERSION,
    }
    if source is not None:
        distillation["source_dataset"] = source
    if dataset.record.get("models"):
        distillation["models"] = public_record(dataset.record)["models"]  # no machine paths on the Hub
    return DatasetCardData(
        license=dataset.record.get("license", "other"),
        pretty_name=_pretty_name(dataset, source),
        task_categories=["image-classification"],
        size_categories=_size_category(max(dataset.num_samples, dataset.num_classes)),
        source_datasets=[source["id"]] if source is not None else None,
        tags=["dataset-distillation", dataset.method, f"ipc-{dataset.ipc}"],
        configs=configs,
        distillation=distillation,
    )


def _pretty_name(dataset: DistilledDataset, source: Optional[dict]) -> str:
    """``record["pretty_name"]``, else "<source> distilled with <method> (IPC <n>)"."""
    if dataset.record.get("pretty_name"):
        return str(dataset.record["pretty_name"])
    base = source["id"] if source is not None else "Dataset"
    return f"{base} distilled with {dataset.method} (IPC {dataset.ipc})"


def _cell(value: Any) -> str:
    """A markdown table cell: JSON for non-strings, pipes and newlines escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(mapping: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yields ``("a.b.c", value)`` for every leaf of a nested dict."""
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _recipe_section(dataset: DistilledDataset) -> str:
    rows = [[f"`{_cell(key)}`", _cell(value)] for key, value in _flatten(public_record(dataset.record))]
    if not rows:
        return "No hyper-parameters were recorded."
    return _table(["hyper-parameter", "value"], rows)


def _stored_description(dataset: DistilledDataset) -> str:
    kind = dataset.stored_representation
    if kind == "latents" and dataset.class_embeddings is not None:
        return (f"initial latents, float32 {tuple(dataset.latents.shape)} + class embeddings, float32 "
                f"{tuple(dataset.class_embeddings.shape)}")
    if kind == "latents":
        return f"latents, float32 {tuple(dataset.latents.shape)}"
    if kind == "gaussians":
        kept = [key.replace("_", " ") for key in GROUP_REFERENCE_KEYS if dataset.gaussians.get(key)]
        seeds = f" + int64 {', '.join(kept)}" if kept else ""
        return f"per-class Gaussians, float32 mean and std {tuple(dataset.gaussians['mean'].shape)}{seeds}"
    return f"images, uint8 {tuple(dataset.images.shape)}"


def _storage_section(dataset: DistilledDataset) -> str:
    stored = dataset.storage_bytes()
    rows = [[f"stored ({_stored_description(dataset)})", f"{stored:,}"]]
    shape = dataset.source_image_shape
    if shape is not None:
        budget = dataset.image_budget_bytes()
        size = "x".join(str(s) for s in shape)
        label = f"IPC-image budget ({dataset.ipc} x {dataset.num_classes} classes x {size} x 4 bytes, float32)"
        rows.append([label, f"{budget:,}"])
        rows.append(["stored / budget", f"{stored / budget:.4g}"])
    else:
        rows.append(["IPC-image budget", "unknown (the run record holds no image shape)"])
    if dataset.stored_representation == "gaussians":
        stands_for = f"one Gaussian per class stands for IPC {dataset.ipc} images per class"
    else:
        stands_for = f"{dataset.samples_per_class} stored samples per class for IPC {dataset.ipc}"
    lines = [f"Budget mode: **{dataset.budget}** ({stands_for}).", "", _table(["", "bytes"], rows)]
    if dataset.images is not None and dataset.class_embeddings is not None:
        lines += ["", "The `images` config holds the images rendered from the stored initial latents and class "
                      "embeddings (`LatentDistillationPipeline.rerender`) for convenience; they are not counted above."]
    elif dataset.images is not None and dataset.stored_representation != "images":
        lines += ["", f"The `images` config holds images decoded from the stored {dataset.stored_representation} "
                      "for convenience; they are not counted above."]
    if dataset.soft_labels is not None:
        lines += ["", f"Soft labels add {dataset.soft_labels.numel() * 4:,} bytes (float32), not counted above."]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "—"


def _evaluation_section(dataset: DistilledDataset) -> str:
    if not dataset.evaluation:
        return "No evaluation was recorded."
    rows = []
    for row in dataset.evaluation:
        name = f"{row['reference']} (reference)" if "reference" in row else str(row.get("method", dataset.method))
        accuracy = f"{_number(row.get('acc_mean'))} ± {_number(row.get('acc_std'))}"
        rows.append([_cell(str(row.get("arch", "—"))), _cell(str(row.get("protocol", "—"))), _cell(name),
                     _cell(str(row.get("samples_per_class", "—"))), accuracy, _cell(str(row.get("runs", "—")))])
    table = _table(["architecture", "protocol", "method / reference", "samples per class", "accuracy", "runs"], rows)
    note = ("Accuracy: mean ± std over runs of a student trained on the set and tested on the full real test set. "
            "Hard-label and soft-label protocols are not comparable with each other.")
    return f"{table}\n\n{note}"


def _configs_section(tables: dict[str, datasets.Dataset]) -> str:
    rows = [[f"`{name}`", f"{table.num_rows:,}", ", ".join(f"`{column}`" for column in table.column_names)]
            for name, table in tables.items()]
    return _table(["config", "rows", "columns"], rows)


def _training_snippet(dataset: DistilledDataset, repo_id: str) -> str:
    """A runnable ``DataLoader`` example: the ``images`` config when published, else the library's
    decoded latents or regenerated Gaussians."""
    soft = '  # soft labels: batch["soft_label"]' if dataset.soft_labels is not None else ""
    if dataset.images is not None:
        lines = [
            "from datasets import load_dataset",
            "from torch.utils.data import DataLoader",
            "",
            f'images = load_dataset("{repo_id}", "images", split="train").with_format("torch")',
            "loader = DataLoader(images, batch_size=256, shuffle=True)",
            "for batch in loader:",
            '    x = batch["image"].float() / 127.5 - 1  # uint8 (B, C, H, W) -> [-1, 1]',
            f'    y = batch["label"]{soft}',
            "    ...  # one optimisation step of your classifier",
        ]
    else:
        if dataset.class_embeddings is not None:
            pipeline, models = "LatentDistillationPipeline", "the recorded LD3M models"
            restore = ["images, labels = pipe.rerender(distilled), distilled.labels"]
        elif dataset.latents is not None:
            pipeline, models = "LatentDistillationPipeline", "the recorded autoencoder"
            restore = ["images, labels = pipe.decode(distilled), distilled.labels"]
        else:
            pipeline, models = "D3HRPipeline", "the recorded D3HR models"
            restore = ["regenerated = pipe.regenerate(distilled)",
                       "images, labels = regenerated.images, regenerated.labels"]
        lines = [
            "from torch.utils.data import DataLoader, TensorDataset",
            "",
            f"from latent_distill import {', '.join(sorted(['DistilledDataset', pipeline]))}",
            "",
            f'distilled = DistilledDataset.from_pretrained("{repo_id}")',
            f"pipe = {pipeline}.from_distilled(distilled)  # {models}",
            *restore,
            "loader = DataLoader(TensorDataset(images.float() / 127.5 - 1, labels), batch_size=256, shuffle=True)",
            f"for x, y in loader:{'  # soft labels: distilled.soft_labels' if soft else ''}",
            "    ...  # one optimisation step of your classifier",
        ]
    return "\n".join(["```python", *lines, "```"])


def _preview_section(dataset: DistilledDataset, preview: bool) -> str:
    if preview:
        return f"![Preview: one row per class, up to {PREVIEW_SAMPLES_PER_CLASS} samples each]({PREVIEW_FILE})"
    if dataset.class_embeddings is not None:
        return "No preview: the set stores no images (render them with `LatentDistillationPipeline.rerender`)."
    if dataset.latents is not None:
        return "No preview: the set stores no images (decode its latents with `LatentDistillationPipeline.decode`)."
    if dataset.gaussians is not None and dataset.images is None:
        return ("No preview: the set stores no images (regenerate them from the Gaussians with "
                "`D3HRPipeline.regenerate`).")
    return "No preview was saved."


def _stored_per_class(dataset: DistilledDataset) -> str:
    kind = dataset.stored_representation
    if kind == "gaussians":
        return "stored as one Gaussian per class from which the images are regenerated"
    if dataset.class_embeddings is not None:
        return f"{dataset.samples_per_class} initial latents and class embeddings stored per class"
    return f"{dataset.samples_per_class} {kind} stored per class"


def card_template() -> str:
    """The card template shipped in the package (``latent_distill/templates/distilled_dataset_card.md``).

    Returns:
        Its text: markdown with ``str.format`` placeholders (``{method}``, ``{ipc}``, ...), filled by
        :func:`render_card`.
    """
    return importlib_resources.files(TEMPLATE_PACKAGE).joinpath(CARD_TEMPLATE).read_text(encoding="utf-8")


def render_card(dataset: DistilledDataset, repo_id: str, preview: bool,
                tables: Optional[dict[str, datasets.Dataset]] = None) -> DatasetCard:
    """Renders the dataset card (YAML header and text) from :func:`card_template`.

    Args:
        dataset: the distilled set.
        repo_id: repository id (or folder) used in the usage snippets.
        preview: whether ``preview.png`` exists and is embedded.
        tables: the output of ``dataset.to_dataset_dict()`` when already built.

    Returns:
        A ``huggingface_hub.DatasetCard``.
    """
    data = card_data(dataset)
    source = _source_dataset(dataset.record)
    fields = {
        "card_data": data.to_yaml(),
        "pretty_name": data.pretty_name,
        "source": f"`{source['id']}`" if source is not None else "an image-classification dataset",
        "method": dataset.method,
        "num_classes": dataset.num_classes,
        "ipc": dataset.ipc,
        "stored_per_class": _stored_per_class(dataset),
        "preview": _preview_section(dataset, preview),
        "default_config": dataset.config_names[0],
        "configs_table": _configs_section(tables if tables is not None else dataset.to_dataset_dict()),
        "repo_id": repo_id,
        "training_snippet": _training_snippet(dataset, repo_id),
        "config_file": CONFIG_FILE,
        "schema_version": SCHEMA_VERSION,
        "recipe_table": _recipe_section(dataset),
        "storage_section": _storage_section(dataset),
        "evaluation_section": _evaluation_section(dataset),
    }
    return DatasetCard(card_template().format(**fields))
