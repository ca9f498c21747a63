"""Wall time of ``examples/distill.py`` on 1 versus 2 CPU processes, and whether the results agree.

Runs ``accelerate launch --cpu --num_processes N examples/distill.py --no_eval`` (LatentDM, IPC-10
storage budget, ``--iterations`` steps) for N = 1 and 2, one after the other, each with its own
empty latent cache so both encode the 60,000 training images (sharded over the processes), and
compares the distilled latents bit for bit.

Writes ``benchmarks/results/process_scaling.json`` / ``.md``.

    python -m benchmarks.process_scaling [--iterations 100]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from .results_io import ROOT, markdown_table, upsert_record, write_markdown


def run(processes: int, iterations: int, work: Path) -> tuple[float, list]:
    """Runs the example on ``processes`` processes; returns (wall seconds, the distilled latents)."""
    folder = work / f"p{processes}"
    command = [str(Path(sys.executable).parent / "accelerate"), "launch", "--cpu", "--num_processes", str(processes),
               "--num_cpu_threads_per_process", "1", "examples/distill.py", "--no_eval",
               "--iterations", str(iterations), "--output_dir", str(folder / "out"),
               "--cache_dir", str(folder / "cache"), "--checkpoint_dir", str(folder / "ckpt")]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    table = pq.read_table(next((folder / "out" / "latents").glob("*.parquet"))).to_pydict()
    return seconds, table["latent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="process-scaling-"))
    try:
        one_seconds, one_latents = run(1, args.iterations, work)
        two_seconds, two_latents = run(2, args.iterations, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {"benchmark": "process_scaling", "dataset": "fashion-mnist", "method": "latent-dm", "ipc": 10,
              "budget": "storage", "iterations": args.iterations, "one_process_seconds": round(one_seconds, 1),
              "two_process_seconds": round(two_seconds, 1), "ratio": round(one_seconds / two_seconds, 2),
              "identical_latents": one_latents == two_latents}
    records = upsert_record("process_scaling", record, ("method", "iterations"))
    write_markdown("process_scaling", "# 1 versus 2 CPU processes (examples/distill.py, encoding included)\n\n" +
                   markdown_table(records, [("method", "method"), ("iterations", "iterations"),
                                            ("1 process s", "one_process_seconds"),
                                            ("2 processes s", "two_process_seconds"), ("speed-up", "ratio"),
                                            ("identical latents", "identical_latents")]))
    print(record)


if __name__ == "__main__":
    main()
