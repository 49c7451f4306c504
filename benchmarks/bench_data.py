"""Data generation speed: 1,000 locations x 1,000 houses, in memory and written as CSV.

.venv/bin/python benchmarks/bench_data.py
"""

from __future__ import annotations

import statistics
import tempfile
import time

from mme_helpers import data

LOCATIONS = [f"City{i:04d}_XX" for i in range(1000)]


def generate_in_memory() -> int:
    rows = 0
    for location in LOCATIONS:
        split = data.location_split(location, 1000, 7)
        rows += len(split.train) + len(split.val) + len(split.test)
    return rows


def main() -> None:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        rows = generate_in_memory()
        times.append(time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        data.generate_dataset(LOCATIONS, 1000, 7, folder)
        written = time.perf_counter() - started
    print("Data generation, 1,000 locations x 1,000 houses (1,000,000 rows)")
    print(f"  generate + split, in memory: {statistics.median(times):.2f} s (median of 3; {rows:,} rows)")
    print(f"  generate + split + write 3,000 CSV files: {written:.2f} s")


if __name__ == "__main__":
    main()
