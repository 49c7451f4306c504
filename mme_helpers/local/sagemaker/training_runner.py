"""The local training runner: reads a job's channels from S3, trains in a worker process, writes
the artifact and the job's log, and moves the job through SageMaker's statuses (each move through
the backend, under its lock)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import queue
import time
import traceback
from typing import Any

from ...sagemaker_hosting import XGBOOST_IMAGE, split_s3_uri
from ..s3_mirror import NoSuchBucket, read_prefix
from . import xgboost_algorithm
from .backend import SageMakerBackend
from .resources import TrainingJob
from .xgboost_algorithm import AlgorithmError

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


class JobStopped(Exception):
    """The job was stopped (StopTrainingJob or its MaxRuntimeInSeconds)."""

    def __init__(self, secondary_status: str, message: str):
        super().__init__(message)
        self.secondary_status = secondary_status
        self.message = message


class _Worker:
    """A process that trains one job after another (XGBoost imported once, no process start per
    job); a job that must end early ends by terminating its worker, which is then replaced."""

    def __init__(self, context):
        self.connection, child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve_jobs, args=(child_end,), name="training-worker", daemon=True)
        self.process.start()
        child_end.close()

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        self.connection.close()


class TrainingRunner:
    """A thread a job for the I/O, and a worker process for XGBoost itself, one per core.

    Workers come from a fork server that has already imported XGBoost and stay for the next job, so
    a job starts in microseconds; a job stopped or out of time is ended by terminating its worker.
    """

    def __init__(self, clients, workers: int | None = None):
        self.clients = clients
        self.backend: SageMakerBackend | None = None
        self.workers = workers or os.cpu_count() or 1
        self.idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for _ in range(self.workers):
            self.idle.put(None)  # a worker is started on first use
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["mme_helpers.local.sagemaker.xgboost_algorithm", "xgboost", "pandas"])
        self.threads = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="training")

    def warm_up(self) -> None:
        """Start the fork server (and its XGBoost import) now rather than on the first job."""
        process = self.context.Process(target=xgboost_algorithm.warm_up)
        process.start()
        process.join()

    def submit(self, job: TrainingJob) -> None:
        self.threads.submit(self._run, job)

    def shutdown(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        while True:
            try:
                worker = self.idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.close()

    # one job -------------------------------------------------------------------------------------

    def _run(self, job: TrainingJob) -> None:
        backend = self.backend
        log = JobLog(self.clients, job.name)
        try:
            request = job.request
            image = request["AlgorithmSpecification"].get("TrainingImage", "")
            match = XGBOOST_IMAGE.search(image)
            if not match:
                raise AlgorithmError(
                    f"local mode runs only the built-in XGBoost algorithm (an image named "
                    f"'<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:<version>'); got '{image or '(none)'}'"
                )
            backend.start_training(job)
            log.write(f"Starting the built-in XGBoost algorithm, image version {match['version']} (local mode)")
            channels, content_types = self._read_channels(request.get("InputDataConfig", []), log)
            self._check_stop(job)
            backend.record_transition(job, "Training", "Training image download completed. Training in progress.")
            result = self._train(job, channels, content_types, match["version"])
            log.write_many(result.log_lines)
            backend.record_transition(job, "Uploading", "Uploading generated training model")
            artifact_uri = self._upload(request["OutputDataConfig"]["S3OutputPath"], job.name, result.artifact)
            log.write(f"Model written to {artifact_uri} ({len(result.artifact):,} bytes)")
            log.flush()  # every line is readable once the job shows Completed
            now = time.time()
            metrics = [{"MetricName": name, "Value": value, "Timestamp": now} for name, value in result.metrics.items()]
            backend.finish_training_job(
                job, "Completed", "Training job completed", metrics=metrics, model_artifact=artifact_uri
            )
        except JobStopped as stop:
            log.write(stop.message)
            log.flush()
            backend.finish_training_job(job, "Stopped", stop.message, secondary_status=stop.secondary_status)
        except AlgorithmError as error:
            log.write(error.reason)
            log.flush()
            backend.finish_training_job(job, "Failed", "Training job failed. " + error.reason, failure_reason=error.reason)
        except Exception as exc:  # a bug of ours: fail the job, say so, keep the service up
            log.write(traceback.format_exc())
            log.flush()
            reason = f"InternalServerError: local training failed unexpectedly: {exc!r}"
            backend.finish_training_job(job, "Failed", reason, failure_reason=reason)
        finally:
            log.flush()

    def _check_stop(self, job: TrainingJob) -> None:
        if job.stop_requested:
            raise JobStopped("Stopped", "Training job stopped on request")

    def _train(self, job: TrainingJob, channels, content_types, image_version: str) -> xgboost_algorithm.TrainingResult:
        """Train in a child process; stop it when the job is stopped or reaches its time limit."""
        limit = job.request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        worker = self.idle.get()
        healthy = False
        try:
            if worker is None or not worker.process.is_alive():
                worker = _Worker(self.context)
            worker.connection.send((channels, content_types, job.request.get("HyperParameters", {}), image_version))
            deadline = time.monotonic() + limit if limit else None
            while not worker.connection.poll(0.05):
                if not worker.process.is_alive() and not worker.connection.poll(0):
                    raise AlgorithmError(
                        f"the training process exited with code {worker.process.exitcode} (out of memory?)", False
                    )
                self._check_stop(job)
                if deadline and time.monotonic() > deadline:
                    raise JobStopped("MaxRuntimeExceeded", f"Training job reached MaxRuntimeInSeconds ({limit} s)")
            outcome = worker.connection.recv()
            healthy = True
        finally:
            if not healthy and worker is not None:
                worker.close()  # stopped, timed out or dead: the next job gets a new worker
                worker = None
            self.idle.put(worker)
        if isinstance(outcome, AlgorithmError):
            raise outcome
        return outcome

    def _read_channels(self, input_config: list[dict[str, Any]], log: JobLog):
        channels: dict[str, list[tuple[str, bytes]]] = {}
        content_types: dict[str, str | None] = {}
        for channel in input_config:
            name = channel["ChannelName"]
            source = channel.get("DataSource", {}).get("S3DataSource")
            if not source:
                raise AlgorithmError(f"channel '{name}': local mode reads channels from S3 only")
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise AlgorithmError(f"channel '{name}': S3DataType {source['S3DataType']} is not supported locally")
            bucket, prefix = split_s3_uri(source["S3Uri"])
            try:
                files = read_prefix(bucket, prefix)
            except NoSuchBucket as exc:
                raise AlgorithmError(f"channel '{name}': bucket '{bucket}' does not exist ({source['S3Uri']})") from exc
            if not files:
                raise AlgorithmError(f"channel '{name}' has no data: no objects under {source['S3Uri']}")
            log.write(
                f"Channel {name}: {len(files)} file(s), {sum(len(d) for _, d in files):,} bytes from {source['S3Uri']}"
            )
            channels[name] = files
            content_types[name] = channel.get("ContentType")
        return channels, content_types

    def _upload(self, output_path: str, job_name: str, artifact: bytes) -> str:
        bucket, prefix = split_s3_uri(output_path)
        key = f"{prefix.rstrip('/')}/{job_name}/output/model.tar.gz".lstrip("/")
        try:
            self.clients.s3.put_object(Bucket=bucket, Key=key, Body=artifact, ContentType="application/x-tar")
        except self.clients.s3.exceptions.NoSuchBucket as exc:
            raise AlgorithmError(f"the output bucket '{bucket}' does not exist ({output_path})") from exc
        return f"s3://{bucket}/{key}"


def _serve_jobs(connection) -> None:
    """A worker process: for each job received, train and send back the result, or the
    AlgorithmError that says why not; until the service closes the connection."""
    while True:
        try:
            channels, content_types, hyperparameters, image_version = connection.recv()
        except (EOFError, OSError):
            return
        try:
            outcome = xgboost_algorithm.train(channels, content_types, hyperparameters, image_version)
        except AlgorithmError as error:
            outcome = error
        except Exception as exc:  # XGBoost or data failures we did not foresee: still the user's answer
            outcome = AlgorithmError(f"{type(exc).__name__}: {exc}", client_error=False)
        connection.send(outcome)


class JobLog:
    """The job's log stream in CloudWatch Logs, where ``fit(wait=True)`` and ``logs()`` read it.

    Lines are sent at most once a second while the job runs (a reader polls every few seconds) and
    all of them before the job ends: a few calls a job, not one a line."""

    FLUSH_INTERVAL_S = 1.0
    groups_made: set[int] = set()  # the logs clients (by id) that have made the log group

    def __init__(self, clients, job_name: str):
        self.clients = clients
        self.stream = f"{job_name}/algo-1-{int(time.time())}"
        self.pending: list[dict[str, Any]] = []
        self.created = False
        self.flushed_at = time.monotonic()  # a job done within a second writes its log in one call

    def write(self, message: str) -> None:
        self.write_many([message])

    def write_many(self, lines: list[str]) -> None:
        stamp = int(time.time() * 1000)
        self.pending.extend({"timestamp": stamp, "message": line} for line in lines)
        if time.monotonic() - self.flushed_at >= self.FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        logs = self.clients.logs
        try:
            if not self.created:
                if id(logs) not in JobLog.groups_made:
                    try:
                        logs.create_log_group(logGroupName=LOG_GROUP)
                    except logs.exceptions.ResourceAlreadyExistsException:
                        pass
                    JobLog.groups_made.add(id(logs))
                logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self.stream)
                self.created = True
            logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=self.stream, logEvents=self.pending)
            self.pending = []
            self.flushed_at = time.monotonic()
        except Exception:  # logs are best effort: never fail a job because of them
            traceback.print_exc()
