"""Killed runs resume to the same result; crashed writes leave nothing that looks complete."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import datasets
import pytest
import torch

from latent_distill.checkpointing import atomic_directory

RUN = textwrap.dedent("""
    import time, torch
    from latent_distill import config_for_method
    from latent_distill.testing import make_image_dataset, make_tiny_pipeline

    pipe = make_tiny_pipeline()
    config = config_for_method("latent-dm", ipc=1, iterations=12, batch_real=10, learning_rate=0.05,
                               checkpoint_every=2, network_kwargs={{"width": 16}})
    if {slow}:
        from latent_distill.objectives import dm
        original = dm.DistributionMatching.iteration
        def slow_iteration(self, *args):
            time.sleep(0.3)
            return original(self, *args)
        dm.DistributionMatching.iteration = slow_iteration
    out = pipe(make_image_dataset(), config, checkpoint_dir={ckpt!r}, resume=True)
    torch.save(out.latents, {result!r})
""")


def run_script(tmp_path: Path, name: str, slow: bool) -> subprocess.Popen:
    script = tmp_path / f"{name}.py"
    script.write_text(RUN.format(slow=slow, ckpt=str(tmp_path / f"{name}-ckpt"),
                                 result=str(tmp_path / f"{name}.pt")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script)], env=env)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    assert run_script(tmp_path, "whole", slow=False).wait(timeout=120) == 0
    victim = run_script(tmp_path, "killed", slow=True)
    state = tmp_path / "killed-ckpt" / "state.pt"
    deadline = time.time() + 60
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), "no checkpoint was written"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (tmp_path / "killed.pt").exists()
    # Same script, same checkpoint folder: it resumes and finishes.
    script = (tmp_path / "killed.py").read_text().replace("if True:", "if False:")
    (tmp_path / "killed.py").write_text(script)
    resumed = subprocess.run([sys.executable, str(tmp_path / "killed.py")],
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert resumed.returncode == 0
    assert torch.equal(torch.load(tmp_path / "killed.pt"), torch.load(tmp_path / "whole.pt"))


def test_failed_write_leaves_no_folder(tmp_path):
    target = tmp_path / "distilled"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "README.md").write_text("---\nconfigs: []\n---\n")
            raise RuntimeError("crash mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_process_killed_mid_write_leaves_nothing_load_dataset_accepts(tmp_path):
    target = tmp_path / "distilled"
    code = textwrap.dedent(f"""
        import os
        from latent_distill.checkpointing import atomic_directory
        with atomic_directory({str(target)!r}) as staging:
            (staging / "data").mkdir()
            (staging / "data" / "train.csv").write_text("a,b\\n1,2\\n")
            os._exit(9)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert not target.exists()
    with pytest.raises(Exception):
        datasets.load_dataset(str(target))


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    from latent_distill.checkpointing import atomic_write_text

    umask = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "folder") as staging:
            atomic_write_text("x", staging / "file.txt")
    finally:
        os.umask(umask)
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "folder" / "file.txt").stat().st_mode & 0o777 == 0o644
