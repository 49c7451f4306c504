"""`make run`'s runner: notebooks in order with papermill, stopping at the first failure."""

import shutil
import subprocess
import sys

import pytest
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


def test_each_notebook_runs_in_the_kernel_its_metadata_names():
    installed = {"python3", suite.MAIN_KERNEL, "mme-xgboost-v3"}
    kernels = {path.stem: suite.kernel_for(path, installed) for path in suite.notebooks()}
    assert kernels.pop("10_sdk_v3") == "mme-xgboost-v3"
    assert set(kernels.values()) == {suite.MAIN_KERNEL}


def test_without_the_project_kernel_the_suite_uses_this_interpreter_and_a_missing_v3_kernel_is_named(tmp_path):
    main = next(p for p in suite.notebooks() if p.name.startswith("02_"))
    assert suite.kernel_for(main, {"python3"}) == "python3"  # a conda environment without `make venv`'s kernel
    v3 = next(p for p in suite.notebooks() if p.name.startswith("10_"))
    with pytest.raises(suite.KernelMissingError, match="mme-xgboost-v3.*make venv"):
        suite.kernel_for(v3, {"python3", suite.MAIN_KERNEL})


def test_a_notebook_is_executed_in_its_own_kernel(tmp_path):
    """papermill starts the kernel the notebook names: the SDK v3 notebook gets .venv-v3's Python."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "mme-xgboost-v3", "display_name": "v3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("PARAM = 0", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("import sys\nprint(sys.prefix, PARAM)")]
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)
    suite.execute(source, output, {"PARAM": 7}, suite.kernel_for(source), progress_bar=False)
    printed = nbformat.read(output, as_version=4).cells[-1].outputs[0]["text"]
    assert printed.strip() == f"{suite.ROOT / '.venv-v3'} 7"
