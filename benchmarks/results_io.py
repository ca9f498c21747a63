"""Benchmark result records: one JSON list per benchmark, a markdown table generated from it, and
the README / model-card sections refreshed from those tables (numbers are never typed by hand).

Records follow the schema of the project's design notes: ``benchmark``, ``dataset``, ``method``,
``representation``, ``ipc``, ``budget``, ``samples_per_class``, ``protocol``, ``arch``,
``eval_epochs``, ``runs``, ``acc_mean``, ``acc_std``, ``distill_seconds``, ``peak_rss_mb``,
``git_commit``, ``date`` (plus benchmark-specific fields).
"""

from __future__ import annotations

import ctypes
import datetime
import fcntl
import json
import re
import resource
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from latent_distill.checkpointing import atomic_write_json, atomic_write_text
from latent_distill.codec import config_downsampling
from latent_distill.default_models import (
    DEFAULT_PIPELINE_PATH,
    FASHION_MNIST_14X14_PIPELINE_PATH,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_peak_rss() -> None:
    """Starts a new peak-memory window (Linux: hands freed heap pages back to the system with glibc's
    ``malloc_trim``, so memory freed earlier does not count, then resets the process's VmHWM via
    /proc/self/clear_refs)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _proc_status_mb(field: str) -> Optional[float]:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB; ``None`` without /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def current_rss_mb() -> Optional[float]:
    """Resident memory of this process now, in MiB (``None`` without /proc)."""
    return _proc_status_mb("VmRSS")


def window_peak_rss_mb() -> float:
    """Peak resident memory since the last :func:`reset_peak_rss`, in MiB (the process peak where
    /proc is unavailable)."""
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else peak_rss_mb()


def invocation(argv: Optional[Sequence[str]] = None) -> str:
    """The command line of this process as typed from the repository root.

    Args:
        argv: the arguments (``sys.argv`` when ``None``).

    Returns:
        ``python -m benchmarks.<name> ...`` for a benchmark module, ``python <path> ...`` for another
        script (its path relative to the repository root where it lies inside it), shell-quoted.
    """
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve() if argv and argv[0] else None
    if script is not None and script.suffix == ".py" and script.parent == ROOT / "benchmarks":
        head = ["python", "-m", f"benchmarks.{script.stem}"]
    elif script is not None and script.is_relative_to(ROOT):
        head = ["python", str(script.relative_to(ROOT))]
    else:
        head = ["python", *argv[:1]]
    return shlex.join(head + argv[1:])


def stamp(record: dict[str, Any]) -> dict[str, Any]:
    """Adds ``command`` (this process's :func:`invocation`, unless the record names its own),
    ``git_commit`` and ``date`` to a record."""
    return {"command": invocation(), **record, "git_commit": git_commit(), "date": datetime.date.today().isoformat()}


def load_records(benchmark: str) -> list[dict[str, Any]]:
    path = RESULTS / f"{benchmark}.json"
    return json.loads(path.read_text()) if path.exists() else []


def upsert_record(benchmark: str, record: dict[str, Any], key: Sequence[str]) -> list[dict[str, Any]]:
    """Adds ``record`` to the benchmark's JSON, replacing a record with the same ``key`` fields.

    Written atomically after every cell, so a long benchmark resumes cell by cell; the
    read-modify-write holds a lock file, so benchmarks running side by side keep each other's cells.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f".{benchmark}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = [r for r in load_records(benchmark) if any(r.get(k) != record.get(k) for k in key)]
        records.append(stamp(record))
        atomic_write_json(records, RESULTS / f"{benchmark}.json")
    return records


def denoiser_label(pipeline: Any) -> Optional[str]:
    """Which training checkpoint of a pipeline folder's denoiser a record was made with.

    Args:
        pipeline: the pipeline folder.

    Returns:
        ``<folder name>-dit@<total training steps>`` from the folder's ``latent_diffusion_training.json``
        (``None`` without one), as the DiT benchmark names its checkpoints.
    """
    path = Path(pipeline) / "latent_diffusion_training.json"
    if not path.exists():
        return None
    training = json.loads(path.read_text())
    return f"{Path(pipeline).name}-dit@{training.get('total_steps', training.get('steps'))}"


MODEL_CARDS = ROOT / "model_cards"


@dataclass(frozen=True)
class ShippedPipelineCards:
    """Where a shipped pipeline folder's model cards live, and how they present it.

    Args:
        autoencoder: the autoencoder's card (``model_cards/<folder>-autoencoder.md``).
        denoiser: the denoiser's card (``model_cards/<folder>-dit.md``).
        grid: the denoiser's sample grid (``model_cards/<folder>-dit-samples.png``; copied into the folder).
        constant: the ``latent_distill`` constant holding the folder's path (for the cards' usage snippets).
        role: what the pipeline is for, one sentence fragment.
    """

    autoencoder: Path
    denoiser: Path
    grid: Path
    constant: str
    role: str


SHIPPED_ROLES = {
    DEFAULT_PIPELINE_PATH.name: ("DEFAULT_PIPELINE_PATH", "the offline default of every method"),
    FASHION_MNIST_14X14_PIPELINE_PATH.name: (
        "FASHION_MNIST_14X14_PIPELINE_PATH",
        "the finer alternative to the default's 4x7x7 latents (four times the latent size, more detail), "
        "D3HR's best setting at IPC 10 (`benchmarks/results/d3hr.md`)"),
}
"""Per shipped pipeline folder name: its ``latent_distill`` constant and its role."""


def shipped_cards(pipeline: Any, folder: Path = MODEL_CARDS) -> ShippedPipelineCards:
    """The model cards of a shipped pipeline folder.

    Args:
        pipeline: the pipeline folder (its name picks the cards).
        folder: where the cards are written.

    Returns:
        The :class:`ShippedPipelineCards`.

    Raises:
        KeyError: for a folder that is not shipped (only shipped models get cards).
    """
    name = Path(pipeline).name
    constant, role = SHIPPED_ROLES[name]
    return ShippedPipelineCards(folder / f"{name}-autoencoder.md", folder / f"{name}-dit.md",
                                folder / f"{name}-dit-samples.png", constant, role)


def write_pipeline_readme(pipeline: Path, cards: Optional[ShippedPipelineCards] = None) -> None:
    """Writes a pipeline folder's ``README.md`` from its model cards: the autoencoder card, then the
    denoiser card's body (either benchmark that renders a card calls this, so neither overwrites
    the other's half).

    Args:
        pipeline: the shipped pipeline folder.
        cards: its cards (default: :func:`shipped_cards` of ``pipeline``).
    """
    cards = cards or shipped_cards(pipeline)
    autoencoder = cards.autoencoder.read_text() if cards.autoencoder.exists() else ""
    text = autoencoder.rstrip() + "\n"
    if cards.denoiser.exists():
        body = cards.denoiser.read_text().split("---\n", 2)[2]
        text += "\n" + body.replace("\n# ", "\n## ", 1)
    atomic_write_text(text, Path(pipeline) / "README.md")


def training_stages(record: Optional[dict]) -> list[dict]:
    """The stages of an ``autoencoder_training.json`` record, first stage first.

    A fine-tune records the record of the model it started from under ``init_record``
    (``examples/train_autoencoder.py --init_vae``), so a record is a chain of stages.

    Args:
        record: the training record, or ``None``.

    Returns:
        One record per stage (without its ``init_record``), oldest first; empty for ``None``.
    """
    stages = []
    while record is not None:
        stages.append({k: v for k, v in record.items() if k != "init_record"})
        record = record.get("init_record")
    return stages[::-1]


def latent_shape_label(vae_config: dict) -> str:
    """``CxHxW`` of the latents an ``AutoencoderKL`` config makes from images of its ``sample_size``."""
    side = vae_config["sample_size"] // config_downsampling(vae_config)
    return f"{vae_config['latent_channels']}x{side}x{side}"


def autoencoder_label(pipeline: Any) -> Optional[str]:
    """Which autoencoder a record's images were decoded with, when not the shipped one as trained.

    Args:
        pipeline: the pipeline folder.

    Returns:
        Comma-joined, each only when it applies: ``<C>x<H>x<W> latents`` when the folder's autoencoder
        makes latents of another shape than the shipped autoencoder's, and ``decoder fine-tuned <steps>
        steps`` (summed over the decoder-only stages since the encoder was last trained) when its
        ``autoencoder_training.json`` records decoder-only fine-tunes (``examples/train_autoencoder.py
        --train_part decoder``). ``None`` when neither applies (the shipped design as trained: records
        made before either label existed carry none).
    """
    parts = []
    config_path = Path(pipeline) / "vae" / "config.json"
    shipped_path = DEFAULT_PIPELINE_PATH / "vae" / "config.json"
    if config_path.exists() and shipped_path.exists():
        shape = latent_shape_label(json.loads(config_path.read_text()))
        if shape != latent_shape_label(json.loads(shipped_path.read_text())):
            parts.append(f"{shape} latents")
    path = Path(pipeline) / "autoencoder_training.json"
    steps = 0
    if path.exists():
        for stage in reversed(training_stages(json.loads(path.read_text()))):
            if stage.get("args", {}).get("train_part", "all") != "decoder":
                break  # a stage that trained the encoder too starts a new latent space
            steps += stage["steps"]
    if steps:
        parts.append(f"decoder fine-tuned {steps} steps")
    return ", ".join(parts) or None


def latents_of(label: Optional[str]) -> Optional[str]:
    """The ``<C>x<H>x<W> latents`` part of an :func:`autoencoder_label` (``None`` for the shipped
    latent shape): what decides how many bytes a latent or a Gaussian over latents stores."""
    head = (label or "").split(", ")[0]
    return head if head.endswith(" latents") else None


def has_record(benchmark: str, **fields: Any) -> bool:
    return any(all(r.get(k) == v for k, v in fields.items()) for r in load_records(benchmark))


class CommandCitations:
    """Numbers the commands behind a table's records: each row cites ``[k]``, the legend lists them.

    A record made before records kept their command cites its benchmark's module and the commit of the
    code that made it.
    """

    def __init__(self) -> None:
        self.sources: list[str] = []

    def cite(self, record: dict[str, Any]) -> str:
        """The ``[k]`` of the command (or, lacking one, the module and commit) that made ``record``."""
        command, commit = record.get("command"), record.get("git_commit", "unknown")
        module = record.get("benchmark")
        if command:
            source = f"`{command}`"
        elif module and (ROOT / "benchmarks" / f"{module}.py").exists():
            source = f"`python -m benchmarks.{module}` at commit `{commit}` (its arguments were not recorded)"
        else:
            source = f"the code at commit `{commit}` (its command was not recorded)"
        if source not in self.sources:
            self.sources.append(source)
        return f"[{self.sources.index(source) + 1}]"

    def legend(self) -> str:
        return "Made by: " + "; ".join(f"[{k}] {source}" for k, source in enumerate(self.sources, 1)) + ".\n"


def markdown_table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Renders rows as a markdown table; ``columns`` are ``(header, key)`` pairs.

    Rows that are benchmark records (they carry ``git_commit``) get a ``made by`` column citing the
    command that made each, listed under the table.
    """
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2f}"
        return "" if value is None else str(value)

    rows, citations = list(rows), CommandCitations()
    if any("git_commit" in row for row in rows):
        columns = [*columns, ("made by", "made_by")]
        rows = [{**row, "made_by": citations.cite(row) if "git_commit" in row else None} for row in rows]
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(k)) for _, k in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n" + ("\n" + citations.legend() if citations.sources else "")


def write_markdown(benchmark: str, text: str) -> Path:
    path = RESULTS / f"{benchmark}.md"
    atomic_write_text(text, path)
    return path


def replace_section(path: Path, name: str, text: str) -> None:
    """Replaces the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``."""
    content = path.read_text()
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(content):
        raise ValueError(f"{path} has no '<!-- {name}:start -->' / '<!-- {name}:end -->' markers.")
    atomic_write_text(pattern.sub(lambda m: m.group(1) + text + m.group(2), content), path)
