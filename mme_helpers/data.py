"""Synthetic house data, one data set per city, as in the AWS multi-model endpoint example.

The features, their distributions and the price formula are the seed example's. Generation is
vectorised and seeded per location (a location's houses do not change when other locations are
added), and the split is a real 60/30/10 split: the seed's ``split_data`` left the test rows in
its validation set.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "PRICE"
FEATURES = (
    "YEAR_BUILT",
    "SQUARE_FEET",
    "NUM_BEDROOMS",
    "NUM_BATHROOMS",
    "LOT_ACRES",
    "GARAGE_SPACES",
)
COLUMNS = (LABEL, *FEATURES)
SEED_LOCATIONS = ("NewYork_NY", "LosAngeles_CA", "Chicago_IL", "Houston_TX")
# How expensive each city is: the seed's formula times this level. Without it the seed's four cities
# share one formula and their models differ only by noise; with it, the same house gets each city's
# own price, so asking the wrong model is a visible mistake. Other names get a level from their name.
PRICE_LEVELS = {"NewYork_NY": 1.6, "LosAngeles_CA": 1.35, "Chicago_IL": 0.85, "Houston_TX": 0.7}
DERIVED_LEVELS = (0.6, 1.6)
MAX_YEAR = 2019
SPLIT_RATIOS = (0.6, 0.3, 0.1)
CHANNELS = ("train", "val", "test")
_LOCATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


class DataParameterError(ValueError):
    """A data-generation parameter that cannot give a usable data set."""


@dataclass(frozen=True)
class Split:
    """The three data sets of one location, label in the first column."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "val": self.val, "test": self.test}


def validate_locations(locations) -> tuple[str, ...]:
    """Any city name is fine, as long as it is usable in file, S3 and job names."""
    if isinstance(locations, str):
        locations = [locations]
    names = tuple(locations)
    if not names:
        raise DataParameterError("LOCATIONS is empty: give at least one location name")
    for name in names:
        if not isinstance(name, str) or not _LOCATION_NAME.match(name):
            raise DataParameterError(
                f"location name {name!r} is not usable: use 1-48 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit (e.g. 'Boston_MA')"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataParameterError(f"location names repeat: {duplicates}")
    return names


def location_rng(seed: int, location: str) -> np.random.Generator:
    """A generator that depends only on the seed and the location's name."""
    return np.random.default_rng([int(seed), zlib.crc32(location.encode())])


def price_level(location: str) -> float:
    """The city's price level: ``PRICE_LEVELS``, or for another name a level in ``DERIVED_LEVELS``
    that depends only on the name (so a city's data never changes)."""
    if location in PRICE_LEVELS:
        return PRICE_LEVELS[location]
    low, high = DERIVED_LEVELS
    return round(low + (high - low) * (zlib.crc32(location.encode()) % 1001) / 1000, 2)


def house_prices(houses: pd.DataFrame, max_year: int = MAX_YEAR, level: float = 1.0) -> np.ndarray:
    """The seed's price formula times the city's price ``level``, truncated to whole dollars like
    the seed's ``int(...)``."""
    price = level * (
        houses["SQUARE_FEET"] * 150
        + 10000 * houses["NUM_BEDROOMS"]
        + 15000 * houses["NUM_BATHROOMS"]
        + 15000 * houses["LOT_ACRES"]
        + 15000 * houses["GARAGE_SPACES"]
        - 5000 * (max_year - houses["YEAR_BUILT"])
    )
    return np.trunc(price.to_numpy(dtype=np.float64)).astype(np.int64)


def random_features(rng: np.random.Generator, num_houses: int, max_year: int = MAX_YEAR) -> pd.DataFrame:
    """House features drawn as the seed's ``gen_random_house`` draws them."""
    return pd.DataFrame(
        {
            "YEAR_BUILT": np.minimum(max_year, rng.normal(1995, 10, num_houses).astype(np.int64)),
            "SQUARE_FEET": rng.normal(3000, 750, num_houses).astype(np.int64),
            "NUM_BEDROOMS": rng.integers(2, 7, num_houses),
            "NUM_BATHROOMS": rng.integers(2, 7, num_houses) / 2,
            "LOT_ACRES": np.round(rng.normal(1.0, 0.25, num_houses), 2),
            "GARAGE_SPACES": rng.integers(0, 4, num_houses),
        },
        columns=list(FEATURES),
    )


def true_prices(features, location: str) -> np.ndarray:
    """What the generator's formula says houses (rows of the six features) are worth in
    ``location``: the label a model of that city learned to predict."""
    frame = pd.DataFrame(np.atleast_2d(np.asarray(features, dtype=np.float64)), columns=list(FEATURES))
    return house_prices(frame, level=price_level(location))


def generate_houses(num_houses: int, rng: np.random.Generator, max_year: int = MAX_YEAR, level: float = 1.0) -> pd.DataFrame:
    """``num_houses`` houses with the price first, then the six features."""
    if not isinstance(num_houses, (int, np.integer)) or isinstance(num_houses, bool) or num_houses < 1:
        raise DataParameterError(f"the number of houses must be a whole number >= 1, got {num_houses!r}")
    houses = random_features(rng, int(num_houses), max_year)
    houses.insert(0, LABEL, house_prices(houses, max_year, level))
    return houses


def split_sizes(num_rows: int, ratios=SPLIT_RATIOS) -> tuple[int, int, int]:
    """Rows for train, validation and test; every set must get at least one row."""
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-9:
        raise DataParameterError(f"split ratios must be three positive numbers adding up to 1, got {ratios}")
    n_train = int(round(num_rows * ratios[0]))
    n_val = int(round(num_rows * ratios[1]))
    sizes = (n_train, n_val, num_rows - n_train - n_val)
    if min(sizes) < 1:
        raise DataParameterError(
            f"{num_rows} houses split {ratios} leaves a set empty (train/val/test = {sizes}); "
            "generate more houses per location"
        )
    return sizes


def split_houses(houses: pd.DataFrame, rng: np.random.Generator, ratios=SPLIT_RATIOS) -> Split:
    """Shuffle once and cut: the three sets are disjoint and together hold every row."""
    n_train, n_val, _ = split_sizes(len(houses), ratios)
    order = rng.permutation(len(houses))
    shuffled = houses.iloc[order].reset_index(drop=True)
    return Split(
        train=shuffled.iloc[:n_train].reset_index(drop=True),
        val=shuffled.iloc[n_train : n_train + n_val].reset_index(drop=True),
        test=shuffled.iloc[n_train + n_val :].reset_index(drop=True),
    )


def location_split(location: str, num_houses: int, seed: int, ratios=SPLIT_RATIOS) -> Split:
    """The houses of one location, split; the same arguments always give the same split."""
    rng = location_rng(seed, location)
    return split_houses(generate_houses(num_houses, rng, level=price_level(location)), rng, ratios)


def to_training_csv(frame: pd.DataFrame) -> str:
    """CSV as the built-in XGBoost algorithm reads it: label first, no header, no index."""
    return frame.to_csv(header=False, index=False, lineterminator="\n", float_format="%.2f")


def write_split(split: Split, data_dir: Path | str, location: str) -> dict[str, Path]:
    """Write ``<data_dir>/<location>/{train,val,test}/<location>_<set>.csv``."""
    paths = {}
    for channel, frame in split.parts().items():
        folder = Path(data_dir) / location / channel
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{location}_{channel}.csv"
        path.write_text(to_training_csv(frame))
        paths[channel] = path
    return paths


def generate_dataset(
    locations=SEED_LOCATIONS,
    num_houses: int = 1000,
    seed: int = 7,
    data_dir: Path | str = "data",
    ratios=SPLIT_RATIOS,
) -> pd.DataFrame:
    """Generate, split and write every location; return one summary row per location."""
    names = validate_locations(locations)
    if not isinstance(num_houses, (int, np.integer)) or isinstance(num_houses, bool) or num_houses < 1:
        raise DataParameterError(f"NUM_HOUSES_PER_LOCATION must be a whole number >= 1, got {num_houses!r}")
    split_sizes(int(num_houses), ratios)
    rows = []
    for location in names:
        split = location_split(location, int(num_houses), seed, ratios)
        write_split(split, data_dir, location)
        everything = pd.concat(split.parts().values())
        rows.append(
            {
                "location": location,
                "price_level": price_level(location),
                "houses": len(everything),
                "train": len(split.train),
                "val": len(split.val),
                "test": len(split.test),
                "median_price": float(everything[LABEL].median()),
                "mean_sqft": float(everything["SQUARE_FEET"].mean()),
                "min_price": int(everything[LABEL].min()),
                "max_price": int(everything[LABEL].max()),
            }
        )
    return pd.DataFrame(rows).set_index("location")


def read_split(data_dir: Path | str, location: str, channel: str) -> pd.DataFrame:
    """Read back one written CSV with its column names."""
    path = Path(data_dir) / location / channel / f"{location}_{channel}.csv"
    return pd.read_csv(path, header=None, names=list(COLUMNS))
