"""Refreshes the README's generated sections from the benchmark tables in ``benchmarks/results``.

Each section ``<!-- name:start -->`` ... ``<!-- name:end -->`` receives the body of
``benchmarks/results/<file>.md`` (its title line dropped). Benchmarks write those files from their
JSON records, so README numbers are never typed by hand.

    python -m benchmarks.render_readme
"""

from __future__ import annotations

import argparse

from .results_io import RESULTS, ROOT, replace_section

SECTIONS = {
    "results": "quality",
    "evaluation-speed": "evaluation_speed",
    "objective-speed": "objective_speed",
    "latent-diffusion": "latent_diffusion",
    "dit-recipe": "dit_recipe",
    "d3hr": "d3hr",
    "d3hr-speed": "d3hr_speed",
    "d3hr-gaussian-fit": "d3hr_gaussian_fit",
    "subset-selection": "subset_selection",
    "ld3m-gradient-flow": "ld3m_gradient_flow",
    "ld3m-cost": "ld3m_cost",
    "encoding-memory": "encoding_memory",
    "process-scaling": "process_scaling",
    "scale": "scale",
}


def table_body(name: str) -> str:
    """The markdown of ``<name>.md`` without its ``# `` title line."""
    lines = (RESULTS / f"{name}.md").read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    readme = ROOT / "README.md"
    for section, name in SECTIONS.items():
        if (RESULTS / f"{name}.md").exists():
            replace_section(readme, section, "\n" + table_body(name) + "\n")
            print(f"README section {section!r} <- benchmarks/results/{name}.md")
        else:
            print(f"README section {section!r}: benchmarks/results/{name}.md not written yet (run its benchmark)")


if __name__ == "__main__":
    main()
