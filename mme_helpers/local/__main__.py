"""``python -m mme_helpers.local start|stop|reset|status|env|logs|serve``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from . import aws_like, config, lifecycle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mme_helpers.local", description=__doc__)
    parser.add_argument("--home", type=Path, default=None, help="state folder (default: $MME_LOCAL_HOME or .mme_local)")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start the service detached (or report the running one)")
    start.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    start.add_argument("--region", default=config.DEFAULT_REGION)
    start.add_argument(
        "--behave-as-aws",
        action="store_true",
        help="where a learner could see a difference, behave as AWS: no per-model state, metrics per minute "
        f"and late (${aws_like.DELAY_VARIABLE}, default {aws_like.DEFAULT_DELAY_S:g} s), no MME_LOCAL_* overrides",
    )
    commands.add_parser("stop", help="stop the service (its state stays on disk for the next start)")
    commands.add_parser("reset", help="stop the service and forget everything: buckets, objects, jobs, endpoints")
    commands.add_parser("status", help="is it running, where")
    commands.add_parser("env", help="print export lines that point boto3 and the SageMaker SDK at the service")
    logs = commands.add_parser("logs", help="print the service's log")
    logs.add_argument("-n", type=int, default=50, help="last N lines")
    serve = commands.add_parser("serve", help="run the service in the foreground (what start runs)")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--region", default=config.DEFAULT_REGION)
    serve.add_argument("--training-workers", type=int, default=None)
    args = parser.parse_args(argv)
    home = (args.home or config.default_home()).resolve()

    try:
        if args.command == "serve":
            from .server import serve as run

            run(home, args.port, args.region, args.training_workers)
        elif args.command == "start":
            if args.behave_as_aws:
                os.environ[aws_like.VARIABLE] = "1"  # read by `serve`, which inherits this environment
            info, started = lifecycle.start(home, port=args.port, region=args.region)
            if args.behave_as_aws and (lifecycle.health(info) or {}).get("profile") != "aws-like":
                print(f"error: the service running for {home} is in local mode's profile: stop it first", file=sys.stderr)
                return 2
            verb = "started" if started else "already running"
            print(f"local AWS service {verb} at {info.url} (pid {info.pid}); state in {home}")
            print('point a shell at it with:  eval "$(python -m mme_helpers.local env)"')
        elif args.command == "stop":
            info = lifecycle.stop(home)
            print(f"stopped the local AWS service (pid {info.pid})" if info else "the local AWS service was not running")
        elif args.command == "reset":
            info = lifecycle.reset(home)
            stopped = f"stopped the local AWS service (pid {info.pid}) and " if info else ""
            print(f"{stopped}forgot its state in {home / 'state'}")
        elif args.command == "status":
            state = lifecycle.status(home)
            print("\n".join(f"{key}: {value}" for key, value in state.items()))
            return 0 if state["state"] == "running" else 3
        elif args.command == "env":
            info = lifecycle.running_service(home)
            if info is None:
                print(
                    "the local AWS service is not running; start it with: python -m mme_helpers.local start", file=sys.stderr
                )
                return 1
            for name in config.clear_variables():
                print(f"unset {name}")
            for name, value in config.client_environment(info, home).items():
                print(f"export {name}={shlex.quote(value)}")
        elif args.command == "logs":
            path = home / config.LOG_FILE
            if not path.exists():
                print(f"no log yet at {path}", file=sys.stderr)
                return 1
            print("\n".join(path.read_text(errors="replace").splitlines()[-args.n :]))
    except lifecycle.LocalServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
