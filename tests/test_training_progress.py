"""The training notebooks' progress bar: one clean line in the notebook, not a pink stderr box."""

from __future__ import annotations

from mme_helpers.training import run_training_jobs


class FinishedJob:
    """What ``run_training_jobs`` reads of an estimator after ``fit(wait=False)``: its job's status."""

    class latest_training_job:  # noqa: N801 - the Estimator attribute it stands for
        @staticmethod
        def describe() -> dict:
            return {"TrainingJobStatus": "Completed"}


def test_training_progress_goes_to_stdout(capsys):
    done = run_training_jobs(["NewYork_NY", "Houston_TX"], lambda location: FinishedJob(), 2, poll_seconds=0)
    out, err = capsys.readouterr()
    assert sorted(done) == ["Houston_TX", "NewYork_NY"]
    assert err == ""
    assert "training jobs: 100%" in out and "2/2" in out
