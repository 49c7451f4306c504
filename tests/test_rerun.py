"""A learner re-running 04-06 against the same endpoint (after a kernel restart) must get the same true
picture: counts are this run's (per-model changes since a snapshot, metrics from this run's start),
new keys are new, the AWS-mode messages read true, and a missing endpoint says which notebook makes it.
The notebooks themselves run twice in a row in `make notebooks-check` (RERUN_NOTEBOOKS)."""

import pandas as pd
import pytest
from conftest import model_tar, train_booster
from test_endpoint import invoke, make_endpoint, put_model

from mme_helpers import eviction
from mme_helpers.cloudwatch import start_of_run, wait_for_metrics
from mme_helpers.endpoint import loaded_models
from mme_helpers.invoke import EndpointNotFound, aws_cold_to_warm, compare_with_aws, require_endpoint, run_tag

ROW = "1,2,3,4,5,6"


def test_a_missing_endpoint_names_the_notebook_that_makes_it(ctx, clients):
    with pytest.raises(EndpointNotFound, match=r"run 03_deploy_endpoint\.ipynb with RUN_NAME='gone' again"):
        require_endpoint(clients.sagemaker, "gone-mme-xgboost", "gone")
    name, _ = make_endpoint(ctx, clients)
    assert require_endpoint(clients.sagemaker, name, "any")["EndpointStatus"] == "InService"


def test_metrics_from_a_start_time_count_only_this_runs_requests(ctx, clients):
    """The first run's requests are not the second run's: 3 requests, then a start time, then 2."""
    name, prefix = make_endpoint(ctx, clients)
    put_model(ctx, clients, prefix, "m.tar.gz")
    for _ in range(3):
        invoke(clients, name, ROW, ContentType="text/csv")
    wait_for_metrics(clients.cloudwatch, name, 3, timeout_seconds=20, poll_seconds=0.2)
    started = start_of_run()
    for _ in range(2):
        invoke(clients, name, ROW, ContentType="text/csv")
    metrics = wait_for_metrics(clients.cloudwatch, name, 2, timeout_seconds=20, poll_seconds=0.2, since=started)
    assert metrics.loc["Invocations", "sum"] == 2 and metrics.loc["ModelCacheHit", "samples"] == 2
    assert metrics.loc["ModelCacheHit", "sum"] == 2  # the model was loaded by the first three


def run_demo(ctx, clients, name, prefix, model, capacity, extra=2):
    """05's eviction demo: fill memory with new copies, add ``extra`` more, ask for the first and last again;
    returns what the notebook prints."""
    tag = run_tag()
    keys = [f"eviction/{tag}/m-{number:02d}.tar.gz" for number in range(1, capacity + extra + 1)]
    for key in keys:
        put_model(ctx, clients, prefix, key, body=model)
    before = loaded_models(name)
    fill, tail = keys[:capacity], keys[capacity:] + [keys[0], keys[-1]]
    for key in fill:
        invoke(clients, name, ROW, key, ContentType="text/csv")
    holds = eviction.memory_holds(loaded_models(name), keys)
    for key in tail:
        invoke(clients, name, ROW, key, ContentType="text/csv")
    everything = eviction.simulate_lru(fill + tail, capacity, loaded=before.attrs["loaded_models"])
    check = eviction.check_every_model(everything, before, loaded_models(name), keys)
    label = {key: f"copy {number:02d}" for number, key in enumerate(keys, 1)}
    return holds, check.attrs["summary"], check.loc[keys].rename(index=label), len(check)


def test_a_rerun_of_the_eviction_demo_prints_what_the_first_run_printed(ctx, clients):
    """Memory for 3 models, already holding 2 others: the first run evicts them, the second run evicts the
    first run's copies; both print the same checks, and every model (the earlier ones too) agrees."""
    booster = train_booster()
    model = model_tar(booster)
    size = int(len(booster.save_raw("ubj")) * 1.4)
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": str(3.5 * size / 1e6)})
    for key in ("a.tar.gz", "b.tar.gz"):
        put_model(ctx, clients, prefix, key, body=model)
        invoke(clients, name, ROW, key, ContentType="text/csv")
    first = run_demo(ctx, clients, name, prefix, model, capacity=3)
    second = run_demo(ctx, clients, name, prefix, model, capacity=3)
    assert first[0] == second[0]
    assert first[0].startswith("the endpoint's memory holds 3 models: 3 of the demo's, 0 others")
    assert first[1] == second[1] == (
        "the endpoint agrees with the LRU simulation for 5 of 5 models of the demo; for every model it held before "
        "the demo: yes"
    )
    pd.testing.assert_frame_equal(first[2], second[2])
    # 4 evicts 1, 5 evicts 2, 1 (back from disk) evicts 3, 5 is a hit
    assert first[2]["lru: evictions"].tolist() == [1, 1, 1, 0, 0] and first[2]["lru: loads"].tolist() == [2, 1, 1, 1, 1]
    assert second[3] > first[3]  # the second run checked the first run's copies too


def test_without_per_model_state_the_check_says_so(ctx, clients, monkeypatch):
    """AWS mode: loaded_models is an empty frame (no /_local state); the check and the memory line say
    'not available' instead of '0 of 5 agree'."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
    nothing = loaded_models("any-endpoint")
    keys = list("abcde")
    simulated = eviction.simulate_lru(keys, capacity=201)
    check = eviction.check_every_model(simulated, nothing, nothing, keys)
    assert check.attrs["summary"].startswith("per-model state: not available (AWS shows none)")
    assert check["lru: loads"].sum() == 5 and check["endpoint: loads"].isna().all()
    assert eviction.memory_holds(nothing, keys) == "per-model state: not available (AWS shows none)"


def test_cold_and_warm_beside_the_aws_figures_with_their_ratio():
    low, high = aws_cold_to_warm()  # the example's 1,145-1,469 ms cold, 19-23 ms warm
    assert round(low, 1) == 49.8 and round(high, 1) == 77.3  # 1,145 / 23 and 1,469 / 19
    timings = pd.DataFrame({"cold_ms": [10.0, 30.0, 20.0], "warm_ms_median": [2.0, 2.0, 5.0]})
    table = compare_with_aws(timings, "local")
    assert table.loc["cold / warm"].tolist() == ["10 x", "50–77 x"]  # 20 ms / 2 ms
    assert table.loc["cold: first call of a model"].tolist() == ["20.0 ms", "1,145–1,469 ms"]


def test_notebooks_check_runs_04_to_06_twice_in_a_row():
    """`make notebooks-check` executes 04-06 again right after 06 (new kernels, same endpoint), before 07."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    plan = subprocess.run(["make", "-n", "notebooks-check"], cwd=root, capture_output=True, text=True, check=True).stdout
    line = next(line for line in plan.splitlines() if "--nbval" in line and "04_invoke_models" in line)
    order = [Path(word).stem[:2] for word in line.split() if word.endswith(".ipynb")]
    assert "--keep-duplicates" in line.split()
    assert order[order.index("04") :][:7] == ["04", "05", "06", "04", "05", "06", "07"]


def test_a_run_starts_at_a_whole_period_of_cloudwatch_once_it_has_come():
    import datetime as dt

    from mme_helpers.cloudwatch import start_of_run

    started = start_of_run(2)
    assert started.timestamp() % 2 == 0 and dt.datetime.now(dt.UTC) >= started
