"""Project-level promises: pinned dependencies agree, notebooks are parameterized and use the
same SDK and boto3 code in both modes."""

import ast
import json
import re
from pathlib import Path

import pytest

from mme_helpers import environment_file, suite
from mme_helpers.naming import RunNameError, RunNames

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_environment_yml_carries_the_lock_files_pins():
    pins = environment_file.locked_requirements()
    assert all(re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[^=\s]+", pin) for pin in pins), "every line is an exact pin"
    assert (ROOT / "environment.yml").read_text() == environment_file.render(pins), "run `make lock`"


def test_sagemaker_is_pinned_to_2x():
    pins = dict(pin.split("==") for pin in environment_file.locked_requirements())
    major, minor = map(int, pins["sagemaker"].split(".")[:2])
    assert major == 2 and minor >= 257
    assert "xgboost" not in pins, "the CPU-only xgboost-cpu wheel, not the CUDA one"
    assert "sagemaker>=2.257,<3" in (ROOT / "requirements.in").read_text()


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_the_suite_is_complete():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_generate_data",
        "02_train_models",
        "03_deploy_endpoint",
        "04_invoke_models",
        "05_cold_warm_eviction",
        "06_endpoint_metrics",
        "07_update_model",
        "08_thousand_models",
        "09_sizing_the_endpoint",
        "10_sdk_v3",
        "11_cleanup",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_with_mode_and_run_name(path):
    cells = code_cells(path)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and cells[0] is tagged[0]
    assigned = {t.id for node in ast.parse("".join(tagged[0]["source"])).body for t in getattr(node, "targets", [])}
    assert {"MODE", "RUN_NAME", "ROLE"} <= assigned


def _mentions_mode(node) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == "MODE") or (isinstance(n, ast.Attribute) and n.attr == "mode")
        for n in ast.walk(node)
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_mode_changes_only_the_setup_call(path):
    """MODE reaches the code in one place, setup(MODE, ...); no cell branches on the mode."""
    setup_calls, other_uses = 0, []
    for cell in code_cells(path)[1:]:
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            if isinstance(node, (ast.If, ast.IfExp, ast.While)) and _mentions_mode(node.test):
                pytest.fail(f"{path.name}: a cell branches on the mode: {ast.unparse(node.test)}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
                setup_calls += 1
                assert isinstance(node.args[0], ast.Name) and node.args[0].id == "MODE"
                continue
            if isinstance(node, ast.Call):
                other_uses += [ast.unparse(a) for a in node.args if isinstance(a, ast.Name) and a.id == "MODE"]
            if isinstance(node, ast.Compare) and _mentions_mode(node):
                other_uses.append(ast.unparse(node))
    assert setup_calls == 1 and other_uses == []


@pytest.mark.parametrize("run", ["", "Demo", "a_b", "-x", "x" * 21, "a--b"])
def test_bad_run_names(run):
    with pytest.raises(RunNameError):
        RunNames(run)


def test_names_derive_from_the_run():
    names = RunNames("demo")
    assert names.job_base("NewYork_NY") == "demo-NewYork-NY"
    assert names.job_pattern("NewYork_NY").match("demo-NewYork-NY-2026-11-24-19-40-30-306")
    assert not names.job_pattern("NewYork_NY").match("demo-NewYork-NY-v2-2026-11-24-19-40-30-306")
    assert names.mme_prefix == "mme-xgboost/demo/multi_model_artifacts/"



def cleanup_commands_naming_other_notebooks(text: str) -> list[str]:
    """Every ``--only`` command in a paragraph that speaks of clean-up must run the clean-up notebook,
    and only it: ``--only 06`` there once ran the thousand-model notebook, which bills an endpoint."""
    wrong = []
    for paragraph in paragraphs_of(text):
        if not re.search(r"clean[- ]?up|cleanup", paragraph, re.IGNORECASE):
            continue
        for command in re.findall(r"[^`\n]*--only[^`\n]*", paragraph):
            chosen = re.findall(r"--only[ =]+([\w.-]+)", command)
            if not chosen or any(not suite.CLEANUP.startswith(name) for name in chosen):
                wrong.append(command.strip())
    return wrong


def paragraphs_of(text: str) -> list[str]:
    return [part for part in re.split(r"\n\s*\n|\n(?=\s*[-*] |\s*\d+\. )", text) if part.strip()]


@pytest.mark.parametrize("path", [ROOT / "README.md", *NOTEBOOKS], ids=lambda p: p.name)
def test_every_cleanup_command_names_the_cleanup_notebook(path):
    text = path.read_text() if path.suffix != ".ipynb" else "\n\n".join(
        "".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]
    )
    assert cleanup_commands_naming_other_notebooks(text) == []


def test_a_cleanup_command_naming_another_notebook_is_caught():
    """The check above on the sentence that once named the thousand-model notebook."""
    old = (
        "- Clean-up: `11_cleanup` deletes the endpoint and checks nothing is left.\n"
        '  By hand: `make run MODE=aws RUN_NAME=<name> PARAMS="--only 06"`.\n'
    )
    assert cleanup_commands_naming_other_notebooks(old) == ['make run MODE=aws RUN_NAME=<name> PARAMS="--only 06"']
    assert cleanup_commands_naming_other_notebooks(old.replace("06", "11")) == []
