"""Run the notebooks in order with papermill: ``python -m mme_helpers.suite`` (what ``make run`` does).

Each executed notebook goes to ``runs/<RUN_NAME>/``. The run stops at the first failing notebook
with a non-zero exit; in AWS mode the clean-up notebook runs even then, so that no paid endpoint
is left behind.

``--rehearse-aws`` runs them in AWS mode against a fresh local service that behaves as AWS where a
learner could see the difference (``mme_helpers.local.rehearsal`` says how, and what differs).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CLEANUP = "11_cleanup.ipynb"
PREDICTIONS = "04_invoke_models.ipynb"
MAIN_KERNEL = "mme-xgboost"  # the project's kernel: the environment the suite itself runs in


class KernelMissingError(LookupError):
    """A notebook's kernel is not installed."""


def notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def kernel_for(path: Path, installed: set[str] | None = None) -> str:
    """The kernel a notebook runs in: the one its metadata names (10_sdk_v3 runs in the SDK v3
    environment, the others in the project's). The project's kernel falls back to ``python3``, this
    interpreter's own (a conda environment without the registered kernel); any other must exist."""
    if installed is None:
        from jupyter_client.kernelspec import KernelSpecManager

        installed = set(KernelSpecManager().find_kernel_specs())
    name = json.loads(path.read_text())["metadata"].get("kernelspec", {}).get("name", MAIN_KERNEL)
    if name in installed:
        return name
    if name == MAIN_KERNEL:
        return "python3"
    raise KernelMissingError(f"{path.name} runs in the Jupyter kernel {name!r}, which is not installed: run `make venv`")


def execute(path: Path, output: Path, parameters: dict, kernel_name: str, progress_bar: bool = True) -> None:
    """One notebook with papermill, in its kernel (``kernel_for``), from the notebooks' folder."""
    import papermill

    papermill.execute_notebook(
        str(path),
        str(output),
        parameters=parameters,
        cwd=str(NOTEBOOKS),
        progress_bar=progress_bar,
        kernel_name=kernel_name,
        request_save_on_cell_execute=False,
    )


def parse_value(text: str):
    """``-p NAME VALUE``: a Python literal if it is one (numbers, lists), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def settle_carriage_returns(text: str) -> str:
    """What a terminal shows of text with carriage returns: each line's last rewrite (a progress
    bar's final state instead of every frame)."""
    settled = []
    for line in text.split("\n"):
        frames = [frame for frame in line.split("\r") if frame]
        settled.append(frames[-1] if frames else "")
    return "\n".join(settled)


def tidy_streams(cell: dict) -> None:
    """Merge a cell's consecutive stream outputs of one name and settle their progress bars."""
    tidied: list[dict] = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            text = "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
            if tidied and tidied[-1].get("output_type") == "stream" and tidied[-1]["name"] == output["name"]:
                tidied[-1]["text"] += text
                continue
            output = {**output, "text": text}
        tidied.append(output)
    for output in tidied:
        if output.get("output_type") == "stream":
            output["text"] = settle_carriage_returns(output["text"])
    cell["outputs"] = tidied


def tidy_executed(path: Path, keep_run_metadata: bool = False) -> None:
    """Progress bars as their final state; without papermill's per-cell timings (unless kept), so
    that committed notebooks change only when outputs do."""
    notebook = json.loads(path.read_text())
    if not keep_run_metadata:
        notebook["metadata"].pop("papermill", None)
    for cell in notebook["cells"]:
        if not keep_run_metadata:
            cell.get("metadata", {}).pop("papermill", None)
            cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] == "code":
            tidy_streams(cell)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def first_error(executed: Path) -> str | None:
    """The error an executed notebook stopped at, as one line.

    A plain kernel stores an ``error`` output; with the SageMaker SDK imported, ``rich`` prints
    the traceback instead, and the exception is the text after the traceback's box.
    """
    try:
        notebook = json.loads(executed.read_text())
    except (OSError, ValueError):
        return None
    marker_seen = False
    for cell in notebook["cells"]:
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown" and 'id="papermill-error-cell"' in source:
            marker_seen = True
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output['ename']}: {output['evalue']}"
            if marker_seen and cell["cell_type"] == "code":
                text = re.sub(r"\x1b\[[0-9;]*m", "", "".join(output.get("data", {}).get("text/plain", "")))
                tail = text.rsplit("\u256f", 1)[-1]  # after the traceback box's last corner
                if tail.strip():
                    return " ".join(tail.split())
        if marker_seen and cell["cell_type"] == "code":
            return None
    return None


def run(mode: str, run_name: str, role: str | None, extra: dict, in_place: bool, only: list[str]) -> int:
    import papermill

    selected = [p for p in notebooks() if not only or any(p.name.startswith(o) for o in only)]
    try:
        kernels = {path: kernel_for(path) for path in selected}  # before anything runs (or bills)
    except KernelMissingError as error:
        print(f"FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    out_dir = NOTEBOOKS if in_place else ROOT / "runs" / run_name
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {"MODE": mode, "RUN_NAME": run_name, **({"ROLE": role} if role else {})}
    failed = None
    started_all = time.perf_counter()
    for index, path in enumerate(selected, start=1):
        declared = declared_parameters(path)
        parameters = {k: v for k, v in {**base, **extra}.items() if k in declared}
        if in_place:
            parameters = {k: v for k, v in extra.items() if k in declared}  # committed outputs use the defaults
        output = out_dir / path.name
        print(f"[{index}/{len(selected)}] {path.name}  {parameters or ''}", flush=True)
        started = time.perf_counter()
        try:
            execute(path, output, parameters, kernels[path])
        except papermill.PapermillExecutionError as error:
            failed = (path.name, error)
            print(
                f"\nFAILED: {path.name}, {first_error(output) or error.ename}\n"
                f"The executed notebook, with the error in place, is {output}",
                file=sys.stderr,
                flush=True,
            )
            break
        finally:
            if output.exists():
                tidy_executed(output, keep_run_metadata=not in_place)
        print(f"      done in {time.perf_counter() - started:.1f} s -> {output.relative_to(ROOT)}", flush=True)
    if failed and mode == "aws" and failed[0] != CLEANUP:
        cleanup = NOTEBOOKS / CLEANUP
        print(f"AWS mode: running {CLEANUP} so that nothing billable is left behind", file=sys.stderr, flush=True)
        try:
            execute(cleanup, out_dir / CLEANUP, base, kernel_for(cleanup), progress_bar=False)
        except papermill.PapermillExecutionError as error:
            print(f"the clean-up failed too ({error.ename}: {error.evalue}); check the AWS console", file=sys.stderr)
    total = time.perf_counter() - started_all
    if failed:
        print(f"run '{run_name}' stopped at {failed[0]} after {total:.0f} s", file=sys.stderr)
        return 1
    print(f"run '{run_name}' ({mode} mode): {len(selected)} notebooks in {total:.0f} s; outputs in {out_dir}")
    predictions = [p for p in selected if p.name == PREDICTIONS]
    if predictions:
        shown = (out_dir / PREDICTIONS).relative_to(ROOT)
        print(f"The predictions are in {shown}; cold and warm calls and eviction in 05, the metrics in 06 (`make lab`).")
    return 0


def rehearsal_home() -> Path:
    """The AWS rehearsal's service home, ``aws-rehearsal`` inside local mode's (``.mme_local`` or
    ``$MME_LOCAL_HOME``): never local mode's own, whose state a rehearsal would forget."""
    from .local import default_home

    return default_home() / "aws-rehearsal"


@contextlib.contextmanager
def aws_rehearsal(home: Path, metrics_delay_s: float | None = None):
    """A fresh service in ``home`` that behaves as AWS, and this process's environment made a rehearsal
    kernel's (papermill's kernels inherit it) until the block ends; then the environment is restored
    and the service stopped. Yields the service's info."""
    import os

    from .local import rehearsal, stop

    delay = rehearsal.CI_METRICS_DELAY_S if metrics_delay_s is None else metrics_delay_s
    info = rehearsal.start_service(home, metrics_delay_s=delay)
    saved = dict(os.environ)
    print(f"AWS rehearsal: the local service at {info.url} behaves as AWS (CloudWatch {delay:g} s late); state in {home}")
    try:
        os.environ.clear()
        os.environ.update(rehearsal.kernel_environment(info, home, saved))
        yield info
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stop(home)


def rehearse_aws(
    run_name: str, role: str | None, extra: dict, only: list[str], metrics_delay_s: float | None = None
) -> int:
    """The notebooks' AWS-mode path against the local service in its AWS-like profile, in a home of its
    own (``rehearsal_home``), started fresh and stopped after. No ``role``: the service's execution
    role, as a learner passes ``ROLE``. Fails if a kernel tried to reach beyond 127.0.0.1."""
    from .local import ROLE_ARN, rehearsal

    home = rehearsal_home()
    with aws_rehearsal(home, metrics_delay_s):
        status = run("aws", run_name, role or ROLE_ARN, extra, False, only)
    escaped = rehearsal.violations(home)
    if escaped:
        print("AWS rehearsal: connections beyond 127.0.0.1 were refused:\n  " + "\n  ".join(escaped), file=sys.stderr)
        return 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mme_helpers.suite", description=__doc__)
    parser.add_argument("--mode", default="local", choices=("local", "aws"))
    parser.add_argument("--run-name", default="demo")
    parser.add_argument("--role", default=None, help="AWS mode: the SageMaker execution role ARN")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, passed to the notebooks that declare it",
    )
    parser.add_argument("--only", action="append", default=[], help="run only notebooks whose name starts so")
    parser.add_argument("--in-place", action="store_true", help="execute into notebooks/ (refresh committed outputs)")
    parser.add_argument(
        "--rehearse-aws",
        action="store_true",
        help="run the AWS-mode path against a fresh local service that behaves as AWS (no AWS account used)",
    )
    parser.add_argument("--metrics-delay", type=float, default=None, help="--rehearse-aws: CloudWatch's delay, seconds")
    args = parser.parse_args(argv)
    extra = {name: parse_value(value) for name, value in args.parameter}
    if args.rehearse_aws:
        if args.in_place or args.mode != "local":
            parser.error("--rehearse-aws runs in AWS mode into runs/<RUN_NAME>/: it takes neither --mode nor --in-place")
        return rehearse_aws(args.run_name, args.role, extra, args.only, args.metrics_delay)
    return run(args.mode, args.run_name, args.role, extra, args.in_place, args.only)


if __name__ == "__main__":
    sys.exit(main())
