"""`make run`'s runner: notebooks in order with papermill, stopping at the first failure."""

import shutil
import subprocess
import sys

from conftest import unique

from mme_helpers import suite


def test_parameters_are_parsed_as_literals():
    assert suite.parse_value("2000") == 2000
    assert suite.parse_value("['Boston_MA']") == ["Boston_MA"]
    assert suite.parse_value("NewYork_NY") == "NewYork_NY"


def test_every_notebook_declares_the_common_parameters():
    for path in suite.notebooks():
        assert {"MODE", "RUN_NAME", "ROLE"} <= suite.declared_parameters(path), path.name


def test_a_failing_notebook_stops_the_run_with_a_clear_message(service):
    run = unique("nojobs").replace("-", "")[:14]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mme_helpers.suite", "--run-name", run, "--only", "03", "--only", "04"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 1
        assert "FAILED: 03_deploy_endpoint.ipynb" in result.stderr and "LookupError" in result.stderr
        assert "no completed training job" in result.stderr
        assert "04_invoke_models" not in result.stdout  # stopped at the first failure
        assert (suite.ROOT / "runs" / run / "03_deploy_endpoint.ipynb").exists()
    finally:
        shutil.rmtree(suite.ROOT / "runs" / run, ignore_errors=True)


def test_progress_bars_are_committed_as_their_final_frame():
    frames = "jobs:   0%|   | 0/4\rjobs:  50%|#  | 2/4\rjobs: 100%|###| 4/4\n"
    assert suite.settle_carriage_returns(frames) == "jobs: 100%|###| 4/4\n"
    cell = {
        "outputs": [
            {"output_type": "stream", "name": "stderr", "text": ["jobs:   0%|   | 0/4"]},
            {"output_type": "stream", "name": "stderr", "text": "\rjobs: 100%|###| 4/4\n"},
            {"output_type": "stream", "name": "stdout", "text": "a line\n"},
            {"output_type": "execute_result", "data": {"text/plain": "x"}, "metadata": {}, "execution_count": 1},
        ]
    }
    suite.tidy_streams(cell)
    assert [o.get("name") for o in cell["outputs"]] == ["stderr", "stdout", None]
    assert cell["outputs"][0]["text"] == "jobs: 100%|###| 4/4\n"
    assert cell["outputs"][1]["text"] == "a line\n"
