"""The synthetic data: the seed's formula, determinism, a correct split, the CSV format, bad input."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from mme_helpers import data


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.csv")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path):
    data.generate_dataset(["A_X", "B_Y"], 200, 11, tmp_path / "one")
    data.generate_dataset(["A_X", "B_Y"], 200, 11, tmp_path / "two")
    assert digest(tmp_path / "one") == digest(tmp_path / "two")


def test_other_seed_other_data(tmp_path):
    data.generate_dataset(["A_X"], 200, 1, tmp_path / "one")
    data.generate_dataset(["A_X"], 200, 2, tmp_path / "two")
    assert digest(tmp_path / "one") != digest(tmp_path / "two")


def test_a_location_does_not_change_when_others_are_added():
    alone = data.location_split("Chicago_IL", 300, 7)
    assert alone.train.equals(data.location_split("Chicago_IL", 300, 7).train)
    other = data.location_split("Houston_TX", 300, 7)
    assert not alone.train.equals(other.train)


def test_price_follows_the_seed_formula():
    houses = data.generate_houses(500, np.random.default_rng(3))
    expected = [
        int(
            h.SQUARE_FEET * 150
            + 10000 * h.NUM_BEDROOMS
            + 15000 * h.NUM_BATHROOMS
            + 15000 * h.LOT_ACRES
            + 15000 * h.GARAGE_SPACES
            - 5000 * (2019 - h.YEAR_BUILT)
        )
        for h in houses.itertuples()
    ]
    assert houses["PRICE"].tolist() == expected


def test_each_city_prices_the_same_house_at_its_own_level(tmp_path):
    house = [[2000, 3000, 3, 2.0, 1.0, 1]]
    seed_price = data.house_prices(pd.DataFrame(house, columns=list(data.FEATURES)))[0]
    assert seed_price == 150 * 3000 + 30000 + 30000 + 15000 + 15000 - 5000 * 19
    prices = {city: data.true_prices(house, city)[0] for city in data.SEED_LOCATIONS}
    assert prices["NewYork_NY"] == int(1.6 * seed_price) and prices["Houston_TX"] == int(0.7 * seed_price)
    assert len(set(prices.values())) == 4
    assert data.price_level("Oslo_NO") == data.price_level("Oslo_NO")  # derived from the name alone
    assert 0.6 <= data.price_level("Oslo_NO") <= 1.6
    summary = data.generate_dataset(["NewYork_NY", "Houston_TX"], 200, 7, tmp_path)
    ratio = summary.loc["NewYork_NY", "median_price"] / summary.loc["Houston_TX", "median_price"]
    assert 1.9 < ratio < 2.7  # 1.6 / 0.7, give or take the draws


def test_feature_ranges_match_the_seed():
    houses = data.generate_houses(20000, np.random.default_rng(5))
    assert houses["YEAR_BUILT"].max() <= 2019
    assert set(houses["NUM_BEDROOMS"]) == {2, 3, 4, 5, 6}
    assert set(houses["NUM_BATHROOMS"]) == {1.0, 1.5, 2.0, 2.5, 3.0}
    assert set(houses["GARAGE_SPACES"]) == {0, 1, 2, 3}
    assert abs(houses["SQUARE_FEET"].mean() - 3000) < 30
    assert abs(houses["LOT_ACRES"].std() - 0.25) < 0.01
    assert list(houses.columns) == list(data.COLUMNS)


@pytest.mark.parametrize("rows", [10, 999, 1000, 1001])
def test_split_sizes_are_60_30_10_disjoint_and_complete(rows):
    houses = data.generate_houses(rows, np.random.default_rng(1))
    houses["ID"] = range(rows)
    split = data.split_houses(houses, np.random.default_rng(2))
    ids = [set(part["ID"]) for part in split.parts().values()]
    assert sum(len(s) for s in ids) == rows
    assert set().union(*ids) == set(range(rows))
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert (len(split.train), len(split.val)) == (round(rows * 0.6), round(rows * 0.3))


def test_csv_is_label_first_without_header(tmp_path):
    data.generate_dataset(["Paris_FR"], 50, 7, tmp_path)
    for channel in data.CHANNELS:
        path = tmp_path / "Paris_FR" / channel / f"Paris_FR_{channel}.csv"
        lines = path.read_text().splitlines()
        first = lines[0].split(",")
        assert len(first) == 7
        assert all(value.replace(".", "", 1).lstrip("-").isdigit() for value in first)  # no header
        frame = pd.read_csv(path, header=None)
        price = data.true_prices(frame.iloc[:, 1:].values, "Paris_FR")
        assert np.allclose(frame[0], price, atol=1)  # the label is the price, in the first column


def test_summary_counts(tmp_path):
    summary = data.generate_dataset(["A_B", "C_D"], 100, 7, tmp_path)
    assert summary[["houses", "train", "val", "test"]].values.tolist() == [[100, 60, 30, 10]] * 2


def test_unknown_city_names_are_fine(tmp_path):
    summary = data.generate_dataset(["Atlantis", "Springfield_XX"], 20, 7, tmp_path)
    assert list(summary.index) == ["Atlantis", "Springfield_XX"]


@pytest.mark.parametrize("houses", [0, -5, 2.5, "100", True])
def test_bad_house_counts_are_refused(tmp_path, houses):
    with pytest.raises(data.DataParameterError, match="whole number"):
        data.generate_dataset(["A"], houses, 7, tmp_path)


def test_a_split_that_leaves_a_set_empty_is_refused(tmp_path):
    with pytest.raises(data.DataParameterError, match="leaves a set empty"):
        data.generate_dataset(["A"], 2, 7, tmp_path)
    with pytest.raises(data.DataParameterError, match="adding up to 1"):
        data.split_sizes(100, (0.6, 0.4, 0.0))
    assert not any(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("locations", [[], ["../etc"], ["a/b"], ["ok", "ok"], [""], [3]])
def test_unusable_location_names_are_refused(tmp_path, locations):
    with pytest.raises(data.DataParameterError):
        data.generate_dataset(locations, 10, 7, tmp_path)
