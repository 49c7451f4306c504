"""The local service's life: start, reuse, stop, restart after a kill, busy ports, the CLI."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mme_helpers.local import config, lifecycle

CLI = [sys.executable, "-m", "mme_helpers.local"]


def cli(home, *args, env=None):
    return subprocess.run([*CLI, "--home", str(home), *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def home(tmp_path):
    yield tmp_path
    lifecycle.stop(tmp_path)


def test_start_reuse_stop(home):
    info, started = lifecycle.start(home)
    assert started and lifecycle.health(info)["status"] == "ok"
    again, started_again = lifecycle.start(home)
    assert not started_again and again.pid == info.pid
    # a second process (another kernel) finds the same service
    other = cli(home, "start")
    assert other.returncode == 0 and "already running" in other.stdout and str(info.pid) in other.stdout
    assert lifecycle.stop(home).pid == info.pid
    assert lifecycle.status(home)["state"] == "stopped"
    assert lifecycle.running_service(home) is None


def test_restart_after_kill(home):
    info, _ = lifecycle.start(home)
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while lifecycle._pid_alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lifecycle.status(home)["state"] == "dead"
    restarted, started = lifecycle.start(home)
    assert started and restarted.pid != info.pid and lifecycle.health(restarted)


def test_concurrent_starts_make_one_service(home):
    procs = [subprocess.Popen([*CLI, "--home", str(home), "start"], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum("started at" in out for out in outputs) == 1, outputs
    pids = {line.split("(pid ")[1].split(")")[0] for out in outputs for line in out.splitlines() if "(pid " in line}
    assert len(pids) == 1


def test_busy_port_is_a_clear_error(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli(home, "start", "--port", str(port))
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


def test_cli_env_status_logs_stop(home):
    assert cli(home, "env").returncode == 1  # not running: says so, no hang
    assert cli(home, "start").returncode == 0
    status = cli(home, "status")
    assert status.returncode == 0 and "state: running" in status.stdout
    env = cli(home, "env").stdout
    info = config.ServiceInfo.load(home)
    assert f"export AWS_ENDPOINT_URL={info.url}" in env
    assert "export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=" in env and "export AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=" in env
    assert f"export AWS_ACCESS_KEY_ID={info.access_key_id}" in env and "unset AWS_PROFILE" in env
    assert "listening on" in cli(home, "logs").stdout
    assert "stopped the local AWS service" in cli(home, "stop").stdout
    assert "was not running" in cli(home, "stop").stdout
    assert cli(home, "status").returncode == 3


def test_a_script_runs_offline_with_the_env_output(home):
    """`eval "$(python -m mme_helpers.local env)"; python their_script.py` works."""
    lifecycle.start(home)
    script = (
        "import boto3; s3 = boto3.client('s3'); s3.create_bucket(Bucket='user-bucket', "
        "CreateBucketConfiguration={'LocationConstraint': 'us-west-2'}); "
        "sm = boto3.client('sagemaker'); print(len(sm.list_endpoints()['Endpoints'])); "
        "print(boto3.client('sts').get_caller_identity()['Account'])"
    )
    shell = f'eval "$({sys.executable} -m mme_helpers.local --home {home} env)"; {sys.executable} -c "{script}"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", config.ACCOUNT_ID]


def test_service_json_is_private(home):
    lifecycle.start(home)
    assert oct((home / config.INFO_FILE).stat().st_mode & 0o777) == "0o600"
    assert json.loads((home / config.INFO_FILE).read_text())["secret_access_key"]


def test_secrets_and_state_folder_are_private_from_the_start(tmp_path, monkeypatch):
    """credentials.json and service.json are never readable by others, not even for an instant:
    with a umask of 0, every secret file is 0600 whenever it is renamed into place or changed."""
    from mme_helpers.local.state import StateStore

    seen: list[tuple[str, int]] = []
    watching = True

    def audit(event, args):
        if watching and event in ("os.chmod", "os.rename") and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if path.startswith(str(tmp_path)) and os.path.isfile(path):
                seen.append((os.path.basename(path), os.stat(path).st_mode & 0o777))

    sys.addaudithook(audit)
    old = os.umask(0)
    try:
        home = tmp_path / "home"
        key, _ = StateStore(home).credentials(config.new_credentials)
        info = config.ServiceInfo(1, 2, "us-west-2", key, "secret", 0.0, str(home))
        info.save(home)
    finally:
        os.umask(old)
        watching = False
    assert seen and all(mode == 0o600 for _, mode in seen), seen
    assert (home / "state" / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert (home / config.INFO_FILE).stat().st_mode & 0o777 == 0o600
    assert (home / "state").stat().st_mode & 0o777 == 0o700


def test_a_started_service_keeps_its_home_and_state_private(tmp_path):
    home = tmp_path / "new-home"
    try:
        lifecycle.start(home)
        assert home.stat().st_mode & 0o777 == 0o700
        assert (home / "state").stat().st_mode & 0o777 == 0o700
        assert (home / "state" / "credentials.json").stat().st_mode & 0o777 == 0o600
        assert (home / config.INFO_FILE).stat().st_mode & 0o777 == 0o600
    finally:
        lifecycle.stop(home)


@pytest.fixture
def stranger():
    """An unrelated process whose pid a stale service.json names (as after a reboot)."""
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


def test_a_reused_pid_is_never_signalled(tmp_path, stranger):
    home = tmp_path
    info = config.ServiceInfo(stranger.pid, 1, "us-west-2", "LKIA0", "secret", time.time(), str(home.resolve()))
    info.save(home)
    assert lifecycle.running_service(home) is None
    assert lifecycle.status(home)["state"] == "dead"
    assert lifecycle.stop(home) is None  # nothing of ours ran
    assert stranger.poll() is None  # the sleep is alive
    assert not (home / config.INFO_FILE).exists()  # the stale file is gone
    info.save(home)
    assert "was not running" in cli(home, "stop").stdout
    assert stranger.poll() is None
    info.save(home)
    started, was_started = lifecycle.start(home)  # a stale file does not block a start
    try:
        assert was_started and started.pid != stranger.pid and stranger.poll() is None
    finally:
        lifecycle.stop(home)


def test_a_service_served_by_hand_for_the_default_home_is_stopped(tmp_path):
    """`python -m mme_helpers.local serve` with the home from $MME_LOCAL_HOME (no --home in its
    command line) is still recognised as the home's service."""
    env = {**os.environ, config.HOME_VARIABLE: str(tmp_path)}
    process = subprocess.Popen([*CLI, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while lifecycle.running_service(tmp_path) is None:
            assert process.poll() is None and time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.1)
        assert lifecycle.stop(tmp_path).pid == process.pid
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
