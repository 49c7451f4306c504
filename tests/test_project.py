"""Project-level promises: pinned dependencies agree, notebooks are parameterized and use the
same SDK and boto3 code in both modes."""

import ast
import json
import re
import shlex
import subprocess
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


def dollar_signs_outside_code(markdown: str) -> list[str]:
    """Lines whose prose holds a ``$``: JupyterLab renders text between two of them as maths (even
    ``\\$``), GitHub does not; amounts are written ``USD 150`` (code spans and fences are safe)."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return [line for line in prose.splitlines() if "$" in re.sub(r"`[^`]*`", "", line)]


@pytest.mark.parametrize("path", [ROOT / "README.md", *NOTEBOOKS], ids=lambda p: p.name)
def test_no_dollar_maths_in_markdown(path):
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        markdown = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    else:
        markdown = path.read_text()
    assert dollar_signs_outside_code(markdown) == []


def test_dollar_maths_is_caught():
    assert dollar_signs_outside_code("costs 150 \\$ a foot, plus 10,000 \\$ a bedroom") != []
    assert dollar_signs_outside_code("costs USD 150, printed as `first call: $383,028.09`\n```\necho $HOME\n```") == []


def workshop_lines() -> list[str]:
    """The one-line workshop setting of 08 and 09 as README and 01 write it."""
    first = json.loads((ROOT / "notebooks" / "01_generate_data.ipynb").read_text())["cells"]
    texts = [(ROOT / "README.md").read_text(), *("".join(cell["source"]) for cell in first)]
    pattern = r"(make run MODE=aws [^`\n]*--only 08 --only 09[^`\n]*?)(?:`|\n|$)"
    return [line for text in texts for line in re.findall(pattern, text)]


def test_the_workshop_setting_runs_as_written():
    """The one line for 08 and 09's workshop setting, through make as a learner types it: it selects
    08 and 09, and each parameter it sets is one of theirs, with the value meant (a list stays a list)."""
    lines = workshop_lines()
    assert len(lines) == 2, lines  # README's AWS mode section and 01's "08 and 09 on AWS"
    selected = [p for p in NOTEBOOKS if p.name.startswith(("08", "09"))]
    declared = set().union(*(suite.declared_parameters(p) for p in selected))
    for line in lines:
        command = re.sub(r"<[^>]*>", "arn:aws:iam::123456789012:role/x", line).replace("make run", "make -n run", 1)
        dry_run = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
        # the suite's command line (under a parent make, "make[1]: Leaving directory" comes after it)
        argv = shlex.split(next(line for line in dry_run.stdout.splitlines()[::-1] if "-m mme_helpers.suite" in line))
        assert argv[argv.index("--mode") + 1] == "aws"
        assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--only"] == ["08", "09"]
        parameters = {argv[i + 1]: suite.parse_value(argv[i + 2]) for i, arg in enumerate(argv) if arg == "-p"}
        assert parameters == {"REQUESTS": 1000, "INSTANCE_TYPES": ["ml.m5.large", "ml.m5.xlarge"]}
        assert set(parameters) <= declared
