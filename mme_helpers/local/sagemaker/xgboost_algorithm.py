"""The built-in XGBoost algorithm as a training job runs it: string hyperparameters, CSV or libsvm
channels, ``xgboost.train``, and a ``model.tar.gz`` holding ``xgboost-model`` in the format the job's
container version writes, as near as XGBoost 3 can (``sagemaker_hosting.model_for_container``), so
that the container's own XGBoost (1.7.4 for 1.7-1, 3.0.5 for 3.0-5) predicts with it what this one
does (``container_xgboost``).

Everything here is pure (bytes in, bytes out) so that it runs in a worker process.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np

from ...sagemaker_hosting import model_for_container, pack_model

INT_PARAMS = {
    "num_round",
    "max_depth",
    "seed",
    "early_stopping_rounds",
    "num_class",
    "verbosity",
    "max_leaves",
    "max_bin",
    "num_parallel_tree",
    "csv_weights",
    "kfold",
    "num_cv_round",
    "max_cat_to_onehot",
    "max_cached_hist_node",
    "nthread",
}
FLOAT_PARAMS = {
    "eta",
    "gamma",
    "min_child_weight",
    "max_delta_step",
    "subsample",
    "colsample_bytree",
    "colsample_bylevel",
    "colsample_bynode",
    "lambda",
    "alpha",
    "sketch_eps",
    "scale_pos_weight",
    "rate_drop",
    "skip_drop",
    "lambda_bias",
    "tweedie_variance_power",
    "base_score",
    "huber_slope",
    "aft_loss_distribution_scale",
    "quantile_alpha",
    "learning_rate",
    "reg_lambda",
    "reg_alpha",
}
STRING_PARAMS = {
    "objective",
    "booster",
    "tree_method",
    "eval_metric",
    "grow_policy",
    "sample_type",
    "normalize_type",
    "updater",
    "process_type",
    "dsplit",
    "refresh_leaf",
    "one_drop",
    "interaction_constraints",
    "monotone_constraints",
    "sampling_method",
    "aft_loss_distribution",
    "multi_strategy",
    "deterministic_histogram",
    "single_precision_histogram",
    "prob_buffer_row",
    "max_cat_threshold",
}
# SageMaker's own keys, accepted and not passed to XGBoost.
IGNORED_PARAMS = {"_tuning_objective_metric", "save_model_on_termination", "use_dask_gpu_training", "_kfold"}
OBJECTIVES = (
    "reg:squarederror",
    "reg:squaredlogerror",
    "reg:logistic",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
    "reg:gamma",
    "reg:tweedie",
    "reg:linear",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "survival:cox",
    "survival:aft",
    "multi:softmax",
    "multi:softprob",
    "rank:ndcg",
    "rank:map",
    "rank:pairwise",
)
CSV_TYPES = ("csv", "text/csv")
LIBSVM_TYPES = ("libsvm", "text/libsvm", "text/x-libsvm")


class AlgorithmError(Exception):
    """Why a training job failed, worded for the user (it becomes the job's FailureReason)."""

    def __init__(self, reason: str, client_error: bool = True):
        super().__init__(reason, client_error)  # both in args: the error crosses a process boundary
        self.reason = ("ClientError: " if client_error else "AlgorithmError: ") + reason

    def __str__(self) -> str:
        return self.reason


@dataclass
class TrainingResult:
    artifact: bytes
    metrics: dict[str, float]
    log_lines: list[str] = field(default_factory=list)
    rounds: int = 0
    best_iteration: int | None = None
    seconds: float = 0.0
    model_format: str = ""  # what xgboost-model is, for the job's log


def parse_hyperparameters(raw: dict[str, str]) -> tuple[dict, int, int | None]:
    """Strings in, typed XGBoost parameters out; ``num_round`` is required, as in the container."""
    params: dict = {}
    for key, text in (raw or {}).items():
        value = str(text).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':  # some SDKs JSON-quote strings
            value = value[1:-1]
        if key in IGNORED_PARAMS:
            continue
        if key in INT_PARAMS:
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not number.is_integer():
                raise AlgorithmError(f"Hyperparameter {key}: value '{value}' is not a whole number")
            params[key] = int(number)
        elif key in FLOAT_PARAMS:
            try:
                params[key] = float(value)
            except ValueError as exc:
                raise AlgorithmError(f"Hyperparameter {key}: value '{value}' is not a number") from exc
        elif key in STRING_PARAMS:
            params[key] = value
        else:
            raise AlgorithmError(f"Hyperparameter {key} is not a hyperparameter of the built-in XGBoost algorithm")
    if "num_round" not in params:
        raise AlgorithmError("Missing required hyperparameter: num_round")
    num_round = params.pop("num_round")
    if num_round < 1:
        raise AlgorithmError(f"Hyperparameter num_round: value {num_round} must be at least 1")
    objective = params.setdefault("objective", "reg:squarederror")
    if objective == "reg:linear":
        params["objective"] = "reg:squarederror"
    elif objective not in OBJECTIVES:
        raise AlgorithmError(f"Hyperparameter objective: value '{objective}' is not one of {', '.join(OBJECTIVES)}")
    if "eval_metric" in params:
        params["eval_metric"] = [m.strip() for m in params["eval_metric"].split(",") if m.strip()]
    early_stopping = params.pop("early_stopping_rounds", None)
    for key in ("kfold", "num_cv_round", "csv_weights"):
        params.pop(key, None)
    params["nthread"] = 1  # one core a job: the pool runs as many jobs as there are cores
    return params, num_round, early_stopping


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def read_channel(channel: str, files: list[tuple[str, bytes]], content_type: str | None):
    """Parse every file of a channel into one XGBoost DMatrix (label first for CSV)."""
    import xgboost as xgb

    if not files:
        raise AlgorithmError(f"channel '{channel}' has no data: no objects under its S3 prefix")
    media = _media_type(content_type) or "libsvm"  # the container's default without a content type
    if media in CSV_TYPES:
        rows = []
        for key, data in files:
            rows.append(_parse_csv(channel, key, data))
        widths = {block.shape[1] for block in rows if block.size}
        if len(widths) > 1:
            raise AlgorithmError(f"channel '{channel}': files have different numbers of columns {sorted(widths)}")
        matrix = np.vstack([block for block in rows if block.size])
        if matrix.shape[1] < 2:
            raise AlgorithmError(f"channel '{channel}': CSV needs the label in the first column and at least one feature")
        return xgb.DMatrix(matrix[:, 1:], label=matrix[:, 0], missing=np.nan, nthread=1)
    if media in LIBSVM_TYPES:
        import scipy.sparse

        rows, labels = [], []
        for key, data in files:
            block, block_labels = _parse_libsvm(channel, key, data)
            rows.append(block)
            labels.extend(block_labels)
        width = max(block.shape[1] for block in rows)
        rows = [scipy.sparse.csr_matrix(b, shape=(b.shape[0], width)) for b in rows]
        return xgb.DMatrix(scipy.sparse.vstack(rows).tocsr(), label=np.array(labels, dtype=np.float32), nthread=1)
    raise AlgorithmError(
        f"channel '{channel}': content type '{content_type}' is not supported by local mode (use text/csv or text/libsvm)"
    )


def _parse_csv(channel: str, key: str, data: bytes) -> np.ndarray:
    import pandas as pd

    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        return np.empty((0, 0))
    try:
        frame = pd.read_csv(io.StringIO(text), header=None, dtype=np.float64, skip_blank_lines=True)
    except ValueError as exc:
        raise AlgorithmError(
            f"channel '{channel}', file {key}: not numeric CSV ({str(exc).splitlines()[0]}); "
            "the built-in XGBoost expects numbers only, label first, no header"
        ) from exc
    except pd.errors.ParserError as exc:
        raise AlgorithmError(f"channel '{channel}', file {key}: {str(exc).strip()}") from exc
    return frame.to_numpy(dtype=np.float32)


def _parse_libsvm(channel: str, key: str, data: bytes):
    import scipy.sparse

    labels, indptr, indices, values = [], [0], [], []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            labels.append(float(tokens[0]))
            for token in tokens[1:]:
                index, _, value = token.partition(":")
                indices.append(int(index))
                values.append(float(value))
        except ValueError as exc:
            raise AlgorithmError(f"channel '{channel}', file {key}, line {number}: not libsvm ({line[:60]!r})") from exc
        indptr.append(len(indices))
    width = (max(indices) + 1) if indices else 1
    matrix = scipy.sparse.csr_matrix((values, indices, indptr), shape=(len(labels), width), dtype=np.float32)
    return matrix, labels


def train(
    channels: dict[str, list[tuple[str, bytes]]],
    content_types: dict[str, str | None],
    hyperparameters: dict[str, str],
    image_version: str = "",
) -> TrainingResult:
    """Train one model as the container of ``image_version`` does and return the packed artifact
    (in the format that container writes) and metrics."""
    import xgboost as xgb

    started = time.perf_counter()
    params, num_round, early_stopping = parse_hyperparameters(hyperparameters)
    if "train" not in channels:
        raise AlgorithmError("channel 'train' is required; the job has channels " + str(sorted(channels)))
    unknown = sorted(set(channels) - {"train", "validation"})
    if unknown:
        raise AlgorithmError(f"channels {unknown} are not channels of the built-in XGBoost (train, validation)")
    dtrain = read_channel("train", channels["train"], content_types.get("train"))
    evals = [(dtrain, "train")]
    if "validation" in channels:
        dval = read_channel("validation", channels["validation"], content_types.get("validation"))
        if dval.num_col() != dtrain.num_col():
            raise AlgorithmError(
                f"channel 'validation' has {dval.num_col()} features but channel 'train' has {dtrain.num_col()}"
            )
        evals.append((dval, "validation"))
    if early_stopping and len(evals) < 2:
        raise AlgorithmError("early_stopping_rounds needs a validation channel")
    history: dict = {}
    lines = [
        f"[{time.strftime('%Y-%m-%d:%H:%M:%S')}:INFO] Running XGBoost {xgb.__version__} locally",
        f"[{time.strftime('%Y-%m-%d:%H:%M:%S')}:INFO] train matrix has {dtrain.num_row()} rows, {dtrain.num_col()} features",
    ]
    try:
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=num_round,
            evals=evals,
            evals_result=history,
            early_stopping_rounds=early_stopping,
            verbose_eval=False,
        )
    except xgb.core.XGBoostError as exc:
        raise AlgorithmError(str(exc).strip().splitlines()[0], client_error=False) from exc
    rounds = len(next(iter(next(iter(history.values())).values()))) if history else num_round
    for i in range(rounds):
        parts = [
            f"{name}-{metric}:{values[i]:.5f}" for name, metrics in history.items() for metric, values in metrics.items()
        ]
        lines.append(f"[{i}]\t" + "\t".join(parts))
    best = None
    if early_stopping:
        best = int(booster.best_iteration)
        booster = booster[: best + 1]  # the container predicts up to the best iteration only
        lines.append(f"Stopping. Best iteration: [{best}]")
    final_index = best if best is not None else rounds - 1
    metrics = {
        f"{name}:{metric}": float(values[final_index]) for name, per in history.items() for metric, values in per.items()
    }
    model, model_format = model_for_container(booster, image_version)
    lines.append(f"xgboost-model written as {model_format}")
    return TrainingResult(
        artifact=pack_model(model),
        metrics=metrics,
        log_lines=lines,
        rounds=rounds,
        best_iteration=best,
        seconds=time.perf_counter() - started,
        model_format=model_format,
    )


def warm_up() -> None:
    """Import XGBoost in a worker before the first job needs it."""
    import xgboost  # noqa: F401
