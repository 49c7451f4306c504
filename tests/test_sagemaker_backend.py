"""The SageMaker control plane's backend in-process (no service): tags, listing, the lock around
what training threads change, the bounded endpoint work and AWS's refusals."""

from __future__ import annotations

import copy
import threading

import pytest

from mme_helpers.local.sagemaker.backend import SageMakerBackend
from mme_helpers.local.sagemaker.endpoint_lifecycle import WORKERS
from mme_helpers.local.sagemaker.errors import ValidationException
from mme_helpers.local.sagemaker.responses import SageMakerResponses
from mme_helpers.local.state import StateStore

REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"


def model_request(name: str, **extra) -> dict:
    container = {"Image": IMAGE, "ModelDataUrl": "s3://bucket/models/", "Mode": "MultiModel"}
    return {"ModelName": name, "ExecutionRoleArn": ROLE, "PrimaryContainer": container, **extra}


def config_request(name: str, model: str, variants: list[dict] | None = None, **extra) -> dict:
    variant = {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    return {"EndpointConfigName": name, "ProductionVariants": variants or [variant], **extra}


def job_request(name: str) -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


# tags ------------------------------------------------------------------------------------------------


def test_tags_are_dropped_with_their_resource(tmp_path):
    """A model or configuration deleted and made again under its name (same ARN) starts untagged,
    also after a restart."""
    sm = SageMakerBackend(REGION, store=StateStore(tmp_path))
    first = sm.create_model(model_request("m", Tags=[{"Key": "team", "Value": "a"}]))
    sm.create_endpoint_config(config_request("c", "m", Tags=[{"Key": "team", "Value": "a"}]))
    sm.delete_endpoint_config("c")
    sm.delete_model("m")
    again = sm.create_model(model_request("m"))
    config = sm.create_endpoint_config(config_request("c", "m"))
    assert again.arn == first.arn
    assert sm.list_tags(again.arn) == [] and sm.list_tags(config.arn) == []
    restored = SageMakerBackend(REGION, store=StateStore(tmp_path))
    restored.restore()
    assert restored.list_tags(again.arn) == [] and restored.list_tags(config.arn) == []


def test_tags_aws_refuses(tmp_path):
    sm = SageMakerBackend(REGION)
    model = sm.create_model(model_request("m"))
    with pytest.raises(ValidationException, match="reserved for AWS use"):
        sm.add_tags(model.arn, [{"Key": "aws:cloudformation:stack-name", "Value": "x"}])
    with pytest.raises(ValidationException, match="reserved for AWS use"):
        sm.create_model(model_request("n", Tags=[{"Key": "AWS:owner", "Value": "x"}]))
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    with pytest.raises(ValidationException, match="at 'tags' failed to satisfy constraint: Member must have length less"):
        sm.add_tags(model.arn, many)
    sm.add_tags(model.arn, many[:50])  # fifty is allowed
    assert len(sm.list_tags(model.arn)) == 50
    with pytest.raises(ValidationException, match="Could not find resource"):
        sm.delete_tags(model.arn.replace("/m", "/gone"), ["k1"])


# production variants ----------------------------------------------------------------------------------


def test_endpoint_configs_aws_refuses(tmp_path):
    sm = SageMakerBackend(REGION)
    sm.create_model(model_request("m"))
    variant = {"VariantName": "A", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    with pytest.raises(ValidationException, match=r"Variant name\(s\) \[A\] are duplicated"):
        sm.create_endpoint_config(config_request("c", "m", [variant, dict(variant)]))
    bare = {"VariantName": "A", "ModelName": "m", "InitialInstanceCount": 1}
    with pytest.raises(ValidationException, match="Either InstanceType or ServerlessConfig must be specified"):
        sm.create_endpoint_config(config_request("c", "m", [bare]))
    serverless = {"VariantName": "A", "ModelName": "m", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}
    sm.create_endpoint_config(config_request("c", "m", [serverless, {**variant, "VariantName": "B"}]))
    assert sm.list_endpoint_configs(sm_query())[0][0].name == "c"  # refused ones left nothing behind


def sm_query(**members):
    from mme_helpers.local.sagemaker.listing import ListQuery

    return ListQuery.from_request(members)


# listing ----------------------------------------------------------------------------------------------


def test_list_operations_sort_as_the_model_documents(tmp_path):
    """ListTrainingJobs: oldest first (SortOrder "The default is Ascending"); ListModels,
    ListEndpointConfigs, ListEndpoints: newest first ("The default is Descending")."""
    sm = SageMakerBackend(REGION)
    api = SageMakerResponses(sm)
    for i, name in enumerate(["b-1", "a-2", "c-3"]):
        sm.create_training_job(job_request(name)).creation_time = 1_000 + i
        sm.create_model(model_request(name)).creation_time = 1_000 + i
    jobs = [j["TrainingJobName"] for j in api.ListTrainingJobs({})["TrainingJobSummaries"]]
    models = [m["ModelName"] for m in api.ListModels({})["Models"]]
    assert jobs == ["b-1", "a-2", "c-3"] and models == ["c-3", "a-2", "b-1"]
    by_name = api.ListTrainingJobs({"SortBy": "Name", "SortOrder": "Descending"})["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in by_name] == ["c-3", "b-1", "a-2"]


def test_list_time_filters_are_honoured(tmp_path):
    sm = SageMakerBackend(REGION)
    api = SageMakerResponses(sm)
    for i, name in enumerate(["old", "mid", "new"]):
        created = 1_700_000_000 + 100 * i
        job = sm.create_training_job(job_request(name))
        job.creation_time, job.last_modified_time = created, created + 50
        sm.create_model(model_request(name)).creation_time = created
        sm.create_endpoint_config(config_request(name, name)).creation_time = created
    window = {"CreationTimeAfter": 1_700_000_050, "CreationTimeBefore": 1_700_000_150}  # JSON epoch seconds

    def names(answer, key, member):
        return sorted(item[member] for item in answer[key])

    assert names(api.ListTrainingJobs(window), "TrainingJobSummaries", "TrainingJobName") == ["mid"]
    assert names(api.ListModels(window), "Models", "ModelName") == ["mid"]
    assert names(api.ListEndpointConfigs(window), "EndpointConfigs", "EndpointConfigName") == ["mid"]
    assert names(api.ListModels({"CreationTimeAfter": "2023-11-14T22:15:00Z"}), "Models", "ModelName") == ["mid", "new"]
    modified = {"LastModifiedTimeAfter": 1_700_000_100, "LastModifiedTimeBefore": 1_700_000_251}
    assert names(api.ListTrainingJobs(modified), "TrainingJobSummaries", "TrainingJobName") == ["mid", "new"]
    assert names(api.ListTrainingJobs({"CreationTimeBefore": 1_600_000_000}), "TrainingJobSummaries", "x") == []


def test_list_endpoints_time_filters(tmp_path):
    gate = threading.Event()
    sm = SageMakerBackend(REGION, hosting=GatedHosting(gate))
    api = SageMakerResponses(sm)
    sm.create_model(model_request("m"))
    sm.create_endpoint_config(config_request("c", "m"))
    for i, name in enumerate(["e-old", "e-new"]):
        endpoint = sm.create_endpoint({"EndpointName": name, "EndpointConfigName": "c"})
        endpoint.creation_time = endpoint.last_modified_time = 1_700_000_000 + 100 * i
    answer = api.ListEndpoints({"CreationTimeAfter": 1_700_000_050})
    assert [e["EndpointName"] for e in answer["Endpoints"]] == ["e-new"]
    answer = api.ListEndpoints({"LastModifiedTimeBefore": 1_700_000_050})
    assert [e["EndpointName"] for e in answer["Endpoints"]] == ["e-old"]
    gate.set()
    sm.lifecycle.shutdown(wait=True)


# training jobs -------------------------------------------------------------------------------------------


class LockedList(list):
    """A job's transitions or metrics that refuse to be copied by a thread without the backend's lock."""

    owner: threading.RLock

    def __deepcopy__(self, memo):
        assert self.owner._is_owned(), "a job's mutable list was copied outside the backend's lock"
        return [copy.deepcopy(item, memo) for item in self]


def test_describe_training_job_copies_under_the_lock():
    sm = SageMakerBackend(REGION)
    job = sm.create_training_job(job_request("j"))
    sm.finish_training_job(job, "Completed", "done", metrics=[{"MetricName": "train:rmse", "Value": 1.0, "Timestamp": 1}])
    LockedList.owner = sm.lock
    with sm.lock:
        job.transitions, job.metrics = LockedList(job.transitions), LockedList(job.metrics)
    described = SageMakerResponses(sm).DescribeTrainingJob({"TrainingJobName": "j"})
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == ["Starting", "Completed"]
    assert described["FinalMetricDataList"][0]["Value"] == 1.0


def test_a_job_out_of_time_keeps_max_runtime_exceeded_after_a_restart(tmp_path):
    sm = SageMakerBackend(REGION, store=StateStore(tmp_path))
    job = sm.create_training_job(job_request("slow"))
    sm.start_training(job)
    sm.finish_training_job(job, "Stopped", "Training job reached MaxRuntimeInSeconds", secondary_status="MaxRuntimeExceeded")
    restored = SageMakerBackend(REGION, store=StateStore(tmp_path))
    restored.restore()
    described = restored.describe_training_job("slow")
    assert described["TrainingJobStatus"] == "Stopped" and described["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert described["SecondaryStatusTransitions"][-1]["Status"] == "MaxRuntimeExceeded"
    assert "ModelArtifacts" not in described  # never an empty S3ModelArtifacts


def test_unknown_training_job_is_a_validation_exception():
    """AWS answers ValidationException "Requested resource not found." (aws/aws-sdk#165,
    aws/amazon-sagemaker-examples#2360), though its documentation lists ResourceNotFound."""
    sm = SageMakerBackend(REGION)
    for call in (sm.describe_training_job, sm.stop_training_job):
        with pytest.raises(ValidationException) as raised:
            call("no-such-job")
        assert raised.value.message == "Requested resource not found."


# endpoint work ----------------------------------------------------------------------------------------


class GatedHosting:
    """Hosting whose provisioning waits for a gate, counting the calls under way at once."""

    def __init__(self, gate: threading.Event):
        self.gate = gate
        self.changed = threading.Condition()
        self.running = self.most = self.calls = 0

    def provision(self, endpoint, config, models):
        with self.changed:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
            self.changed.notify_all()
        self.gate.wait(30)
        with self.changed:
            self.running -= 1
        return object()

    def wait_running(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.running >= count, timeout=30)

    def teardown(self, runtime, metrics=True):
        pass


def test_endpoint_work_runs_on_a_bounded_pool_that_stops_with_the_service():
    gate = threading.Event()
    hosting = GatedHosting(gate)
    sm = SageMakerBackend(REGION, hosting=hosting)
    sm.create_model(model_request("m"))
    sm.create_endpoint_config(config_request("c", "m"))
    threads_before = threading.active_count()
    for i in range(3 * WORKERS):
        sm.create_endpoint({"EndpointName": f"e{i}", "EndpointConfigName": "c"})
    hosting.wait_running(WORKERS)
    assert threading.active_count() - threads_before <= WORKERS  # not one thread a call
    sm.shutdown()  # the service stops: work not started is dropped
    gate.set()
    sm.lifecycle.executor.shutdown(wait=True)
    assert hosting.most <= WORKERS and hosting.calls == WORKERS
    statuses = [sm.get_endpoint(f"e{i}").status for i in range(3 * WORKERS)]
    assert statuses.count("InService") == WORKERS and statuses.count("Creating") == 2 * WORKERS


def test_a_deleted_endpoint_is_gone_with_its_tags():
    gate = threading.Event()
    gate.set()
    sm = SageMakerBackend(REGION, hosting=GatedHosting(gate))
    sm.create_model(model_request("m"))
    sm.create_endpoint_config(config_request("c", "m"))
    endpoint = sm.create_endpoint({"EndpointName": "e", "EndpointConfigName": "c", "Tags": [{"Key": "k", "Value": "v"}]})
    sm.delete_endpoint("e")
    sm.lifecycle.executor.shutdown(wait=True)  # every queued piece of work done
    with pytest.raises(ValidationException, match='Could not find endpoint "arn:aws:sagemaker:us-west-2:'):
        sm.get_endpoint("e")
    assert endpoint.arn not in sm.tags


def futures_of(sm: SageMakerBackend) -> list:
    """The futures of the endpoint work the backend submits from now on."""
    futures: list = []
    submit = sm.lifecycle.executor.submit
    sm.lifecycle.executor.submit = lambda *args, **kwargs: futures.append(submit(*args, **kwargs)) or futures[-1]
    return futures


class RecordingHosting(GatedHosting):
    """Gated hosting that remembers which runtimes it tore down."""

    def __init__(self, gate: threading.Event):
        super().__init__(gate)
        self.torn_down: list = []

    def teardown(self, runtime, metrics=True):
        self.torn_down.append(runtime)


def test_update_endpoint_is_updating_while_the_old_configuration_serves():
    gate = threading.Event()
    gate.set()
    hosting = RecordingHosting(gate)
    sm = SageMakerBackend(REGION, hosting=hosting)
    sm.create_model(model_request("m"))
    sm.create_endpoint_config(config_request("small", "m"))
    bigger = {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 2, "InstanceType": "ml.m5.2xlarge"}
    sm.create_endpoint_config(config_request("big", "m", [bigger]))
    work = futures_of(sm)
    endpoint = sm.create_endpoint({"EndpointName": "e", "EndpointConfigName": "small"})
    work[-1].result()
    old = endpoint.runtime
    assert sm.describe_endpoint("e")["EndpointStatus"] == "InService" and old is not None
    gate.clear()
    sm.update_endpoint({"EndpointName": "e", "EndpointConfigName": "big"})
    hosting.wait_running(1)  # the new configuration is being provisioned
    during = sm.describe_endpoint("e")
    assert during["EndpointStatus"] == "Updating" and during["EndpointConfigName"] == "small"
    assert endpoint.runtime is old  # the old one still serves
    with pytest.raises(ValidationException, match='Cannot update in-progress endpoint "arn:aws:sagemaker:'):
        sm.update_endpoint({"EndpointName": "e", "EndpointConfigName": "big"})
    gate.set()
    work[-1].result()
    after = sm.describe_endpoint("e")
    assert after["EndpointStatus"] == "InService" and after["EndpointConfigName"] == "big"
    assert after["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert endpoint.runtime is not old and old in hosting.torn_down
