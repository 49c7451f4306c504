"""``environment.yml`` for conda users, generated from ``requirements.lock`` so the pins agree.

``python -m mme_helpers.environment_file > environment.yml`` (``make lock`` does it).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def locked_requirements(lock_file: Path = ROOT / "requirements.lock") -> list[str]:
    """The ``name==version`` lines of the lock file."""
    lines = lock_file.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def render(pins: list[str]) -> str:
    body = "\n".join(f"      - {pin}" for pin in pins)
    return (
        "# Conda environment with the exact pins of requirements.lock (generated: make lock).\n"
        "#   conda env create -f environment.yml && conda activate mme-xgboost && pip install --no-deps -e .\n"
        "name: mme-xgboost\n"
        "channels:\n"
        "  - conda-forge\n"
        "dependencies:\n"
        "  - python=3.11\n"
        "  - pip\n"
        "  - pip:\n"
        f"{body}\n"
    )


if __name__ == "__main__":
    print(render(locked_requirements()), end="")
