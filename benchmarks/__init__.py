"""The project's benchmarks: one module per measurement, run from the repository root as

    python -m benchmarks.<name> [--help]

Each upserts its records into ``benchmarks/results/<name>.json`` as they are measured and generates
a markdown table from them (``<name>.md``); the README's generated sections are refreshed from those
tables (``python -m benchmarks.render_readme``), the model cards by the benchmarks of the shipped
models. Shared pieces: :mod:`.results_io` (records, tables, memory figures), :mod:`.cells` (run a
cell unless it is recorded, time it, record its peak memory) and :mod:`.reference_loop` (the public
reference's training loop).
"""
