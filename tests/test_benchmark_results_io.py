"""Benchmark records keep the command that made them, and tables cite it row by row."""

from benchmarks.results_io import ROOT, invocation, markdown_table, stamp


def test_invocation_names_a_benchmark_module_as_python_dash_m():
    argv = [str(ROOT / "benchmarks" / "d3hr.py"), "--cells", "d3hr", "--guidance", "2"]
    assert invocation(argv) == "python -m benchmarks.d3hr --cells d3hr --guidance 2"


def test_invocation_quotes_arguments_and_keeps_other_scripts_paths():
    argv = [str(ROOT / "examples" / "distill.py"), "--output_dir", "my runs/a"]
    assert invocation(argv) == "python examples/distill.py --output_dir 'my runs/a'"
    assert invocation(["/elsewhere/tool.py", "-x"]) == "python /elsewhere/tool.py -x"


def test_stamp_records_this_process_command_unless_the_record_names_one():
    assert stamp({"acc_mean": 1.0})["command"] == invocation()
    assert stamp({"acc_mean": 1.0, "command": "python -m benchmarks.d3hr"})["command"] == "python -m benchmarks.d3hr"
    assert {"git_commit", "date"} <= set(stamp({}))


def test_table_of_records_cites_each_rows_command_once():
    records = [{"acc": 1.0, "command": "python -m benchmarks.d3hr --cells d3hr", "git_commit": "abc"},
               {"acc": 2.0, "command": "python -m benchmarks.d3hr --cells draw", "git_commit": "abc"},
               {"acc": 3.0, "command": "python -m benchmarks.d3hr --cells d3hr", "git_commit": "def"},
               {"acc": 4.0, "benchmark": "d3hr", "git_commit": "0123456"},
               {"acc": 5.0, "benchmark": "no_such_module", "git_commit": "789"}]
    text = markdown_table(records, [("accuracy", "acc")])
    lines = text.splitlines()
    assert lines[0] == "| accuracy | made by |"
    cited = [line.strip("| ").split(" | ")[1] for line in lines[2:7]]
    assert cited == ["[1]", "[2]", "[1]", "[3]", "[4]"]
    legend = lines[-1]
    assert legend.startswith("Made by: [1] `python -m benchmarks.d3hr --cells d3hr`; "
                             "[2] `python -m benchmarks.d3hr --cells draw`")
    assert "[3] `python -m benchmarks.d3hr` at commit `0123456` (its arguments were not recorded)" in legend
    assert "[4] the code at commit `789` (its command was not recorded)" in legend


def test_table_of_derived_rows_has_no_citation_column():
    text = markdown_table([{"acc": 1.0}], [("accuracy", "acc")])
    assert text == "| accuracy |\n|---|\n| 1.00 |\n"


def test_autoencoder_label_names_a_latent_shape_other_than_the_shipped_one(tmp_path):
    import json

    from benchmarks.results_io import autoencoder_label
    from latent_distill.default_models import fashion_mnist_autoencoder_config

    for name, channels in (("same", 4), ("wide", 8)):
        (tmp_path / name / "vae").mkdir(parents=True)
        config = {"_class_name": "AutoencoderKL", **fashion_mnist_autoencoder_config(channels)}
        (tmp_path / name / "vae" / "config.json").write_text(json.dumps(config))
    assert autoencoder_label(tmp_path / "same") is None
    assert autoencoder_label(tmp_path / "wide") == "8x7x7 latents"
    stage = {"args": {"train_part": "decoder"}, "steps": 3, "init_record": {"args": {}, "steps": 9}}
    (tmp_path / "wide" / "autoencoder_training.json").write_text(json.dumps(stage))
    assert autoencoder_label(tmp_path / "wide") == "8x7x7 latents, decoder fine-tuned 3 steps"


def test_latent_shape_label_follows_the_downsampling_and_bad_downsampling_is_refused():
    import pytest

    from benchmarks.results_io import latent_shape_label
    from latent_distill.default_models import fashion_mnist_autoencoder_config

    assert latent_shape_label(fashion_mnist_autoencoder_config(4, downsampling=1)) == "4x14x14"
    assert latent_shape_label(fashion_mnist_autoencoder_config(8)) == "8x7x7"
    with pytest.raises(ValueError, match="1 or 2 times"):
        fashion_mnist_autoencoder_config(4, downsampling=3)
