"""Start, find, check and stop the one detached local service that all kernels share."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .config import DEFAULT_REGION, HOST, INFO_FILE, LOG_FILE, ServiceInfo, default_home
from .private_files import private_folder


class LocalServiceError(RuntimeError):
    """The local service could not be started, reached or stopped."""


class PortInUseError(LocalServiceError):
    """The port asked for is taken by another program."""


def _zombie(pid: int) -> bool:
    """A process that has exited but was not reaped (its parent, e.g. a PID 1 that does not reap,
    never waited for it) still answers kill(0): it is dead all the same."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _pid_alive(pid: int) -> bool:
    if _zombie(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # ours: reap it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line(pid: int) -> list[str] | None:
    """A process's arguments (None: no such process, or not ours to read)."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                return [part.decode(errors="replace") for part in file.read().split(b"\0") if part]
        except OSError:
            return None
    try:  # no /proc (macOS): ps says the same
        listed = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return listed.stdout.split() if listed.returncode == 0 else None


def is_service(info: ServiceInfo, home: Path) -> bool:
    """Is ``info.pid`` this state folder's service, and not a process that got its pid after a
    reboot or a kill? Only then may it be signalled: its command line is ``... -m mme_helpers.local
    --home <home> serve``, the one ``start`` runs."""
    if not _pid_alive(info.pid):
        return False
    arguments = _command_line(info.pid)
    if not arguments or "mme_helpers.local" not in arguments or "serve" not in arguments:
        return False
    given = None
    for position, argument in enumerate(arguments):
        if argument == "--home" and position + 1 < len(arguments):
            given = arguments[position + 1]
        elif argument.startswith("--home="):
            given = argument.partition("=")[2]
    if given is None:  # `serve` run by hand for the default home: its pid wrote this service.json
        return True
    return Path(given).resolve() == Path(home).resolve()


def health(info: ServiceInfo, timeout: float = 2.0) -> dict | None:
    """The service's own health answer, or None when nothing healthy answers on its port."""
    from .signed_http import signed_get

    try:
        status, answer = signed_get(
            info.url, "/_local/health", info.access_key_id, info.secret_access_key, info.region, timeout
        )
    except (OSError, ValueError, http.client.HTTPException):
        return None
    if status != 200 or not isinstance(answer, dict):
        return None
    return answer if answer.get("pid") == info.pid else None


def running_service(home: Path | None = None) -> ServiceInfo | None:
    """The service running for this state folder, if it is alive and answers."""
    home = home or default_home()
    info = ServiceInfo.load(home)
    if info is None or not is_service(info, home):
        return None
    return info if health(info) else None


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {HOST} is already in use by another program; "
                    "choose another with --port, or leave it out to get a free port"
                ) from exc
            raise


@contextlib.contextmanager
def _start_lock(home: Path):
    """Two kernels starting at once get one service, not two."""
    private_folder(home)  # 0700: it holds the service's credentials
    with open(home / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _log_tail(home: Path, lines: int = 20) -> str:
    try:
        return "\n".join((home / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def service_environment() -> dict[str, str]:
    """The service's environment: glibc gets two malloc arenas, not eight per core. Models are
    loaded and freed from many threads; with an arena each, freed memory stays scattered and the
    resident size drifts above the cache budget."""
    return {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}


def start(
    home: Path | None = None,
    port: int = 0,
    region: str = DEFAULT_REGION,
    timeout: float = 60.0,
    python: str | None = None,
) -> tuple[ServiceInfo, bool]:
    """Start the service detached, or find the one already running.

    ``python`` is the interpreter that runs it (default: this one); a kernel whose environment lacks
    the service's packages (the SDK v3 kernel: no moto, no XGBoost) names the project's main one.
    Returns the service's info and whether this call started it.
    """
    home = (home or default_home()).resolve()
    with _start_lock(home):
        existing = ServiceInfo.load(home)
        if existing is not None:
            ours = is_service(existing, home)
            if ours and health(existing):
                return existing, False
            if ours:
                raise LocalServiceError(
                    f"a local service (pid {existing.pid}) holds {home} but does not answer on port "
                    f"{existing.port}; stop it with `python -m mme_helpers.local stop` and start again"
                )
            (home / INFO_FILE).unlink(missing_ok=True)  # left behind by a service that was killed (or a reboot)
        if port:
            _check_port_free(port)
        command = [python or sys.executable, "-m", "mme_helpers.local", "--home", str(home), "serve", "--port", str(port)]
        command += ["--region", region]
        with open(home / LOG_FILE, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(home),
                env=service_environment(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalServiceError(
                    f"the local service exited at start (code {process.returncode}); its log says:\n" + _log_tail(home)
                )
            info = ServiceInfo.load(home)
            if info is not None and info.pid == process.pid and health(info, timeout=1.0):
                return info, True
            time.sleep(0.05)
        process.kill()
        raise LocalServiceError(f"the local service did not answer within {timeout:.0f} s; log:\n{_log_tail(home)}")


def stop(home: Path | None = None, timeout: float = 15.0) -> ServiceInfo | None:
    """Stop the service of this state folder; returns what was stopped (None: nothing ran).
    A pid that is no longer the service's (reused after a reboot) is never signalled: the stale
    ``service.json`` is removed and nothing else happens."""
    home = (home or default_home()).resolve()
    info = ServiceInfo.load(home)
    if info is None:
        return None
    if not is_service(info, home):
        (home / INFO_FILE).unlink(missing_ok=True)
        return None
    if _pid_alive(info.pid):
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
            time.sleep(0.1)
    (home / INFO_FILE).unlink(missing_ok=True)
    return info


def reset(home: Path | None = None) -> ServiceInfo | None:
    """Stop the service and forget its state (buckets, objects, jobs, endpoints) and the endpoints'
    disk caches."""
    from .runtime.hosting import remove_caches
    from .state import StateStore

    home = (home or default_home()).resolve()
    with _start_lock(home):
        stopped = stop(home)
        StateStore(home).reset()
        remove_caches(home)
    return stopped


def status(home: Path | None = None) -> dict:
    """A plain description for the CLI and for notebooks."""
    home = (home or default_home()).resolve()
    info = ServiceInfo.load(home)
    if info is None:
        return {"state": "stopped", "home": str(home)}
    if not _pid_alive(info.pid):
        return {"state": "dead", "home": str(home), "pid": info.pid, "detail": "the process is gone (killed?)"}
    if not is_service(info, home):
        detail = "the process is gone; its pid now belongs to another program"
        return {"state": "dead", "home": str(home), "pid": info.pid, "detail": detail}
    answer = health(info)
    if answer is None:
        return {"state": "not answering", "home": str(home), "pid": info.pid, "port": info.port}
    return {"state": "running", "home": str(home), "pid": info.pid, "url": info.url, **answer}
