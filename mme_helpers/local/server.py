"""The local AWS service: one process, one port on 127.0.0.1.

Requests are routed by their SigV4 credential scope: ``sagemaker`` goes to our control plane
(``X-Amz-Target: SageMaker.*``) or runtime (``/endpoints/{name}/invocations``); every other
service (S3, STS, IAM, CloudWatch, CloudWatch Logs, ...) goes to moto's server, in-process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

from . import aws_like, execution_role, iam_simulation
from .asgi import Request, Response
from .auth import Authenticator, aws_error, denied, protocol_of
from .aws_clients import ServiceClients
from .config import HOST, SDK_CONFIG_FILE, ServiceInfo, default_bucket, new_credentials, sdk_config_yaml
from .metrics import MetricsPublisher
from .moto_guard import answering_unknown_operations, guarded_moto
from .private_files import private_folder
from .runtime.hosting import Hosting, remove_caches
from .runtime.invocations import MAX_PAYLOAD, InvocationHandler, endpoint_name_from_path
from .s3_mirror import S3Mirror, change_of
from .sagemaker.backend import SageMakerBackend
from .sagemaker.errors import UnknownOperation
from .sagemaker.responses import SageMakerResponses, error_response
from .sagemaker.training_runner import TrainingRunner
from .sigv4 import AuthFailure, credential_scope
from .state import StateStore

MAX_SIGNED_BODY = 64 * 1024 * 1024  # non-S3 bodies are read whole to check their hash
MOTO_IN_MEMORY_OBJECT_BYTES = 64 * 1024
RETRY_AFTER_S = 1  # what a request that comes while the state is being restored is told
HEALTH_PATH = "/_local/health"  # the service's liveness check (start, status): answered in every profile

def moto_application():
    """moto's own server app (the one ``moto_server`` runs), as ASGI."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # moto's dispatcher lists its own package folder (a few hundred isdir calls) on every request,
    # under its routing lock; the list never changes while the service runs
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    # S3 bodies checked against their signed hash; what moto cannot do answered in the caller's protocol
    create = answering_unknown_operations(_with_s3_bodies_as_sent(create_backend_app))
    return guarded_moto(DomainDispatcherApplication(create))


def _with_s3_bodies_as_sent(create_backend_app):
    """moto's app maker, its S3 app reading a body as the bytes sent whatever the Content-Type.

    werkzeug parses a ``application/x-www-form-urlencoded`` body as a form and leaves moto an empty
    body: a PUT sent by ``curl -d`` or ``urllib`` stored an empty object. S3 reads forms only in a
    POST (a browser's upload); everything else is data."""
    from moto.moto_server.werkzeug_app import BackendRequest

    class S3Request(BackendRequest):
        @property
        def want_form_data_parsed(self) -> bool:
            return self.method == "POST" and bool(self.environ.get("CONTENT_TYPE"))

    def create(service):
        app = create_backend_app(service)
        if service == "s3":
            app.request_class = S3Request
        return app

    return create


class LocalAWS:
    """The ASGI application: routing plus the services behind it."""

    def __init__(
        self, info: ServiceInfo, home: Path, training_workers: int | None = None, profile: aws_like.Profile | None = None
    ):
        self.info = info
        self.home = home
        self.profile = profile or aws_like.Profile()
        self.started = time.time()
        self.ready = False  # until the state is restored and the account set up: 503 to everyone else
        self.failed: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # the service's own requests (bootstrap, metrics, model loads, training) sign with a key of
        # their own, never published: they are served while the state is being restored
        self.own_key, own_secret = new_credentials()
        self.clients = ServiceClients(info.url, info.region, self.own_key, own_secret)
        self.metrics = MetricsPublisher(
            self.clients, period_s=self.profile.metrics_period_s, delay_s=self.profile.metrics_delay_s
        )
        self.training = TrainingRunner(self.clients, workers=training_workers)
        self.hosting = Hosting(
            self.clients, home, info.region, self.metrics, lambda: self.loop, honour_overrides=not self.profile.aws_like
        )
        self.store = StateStore(home)
        self.s3_mirror = S3Mirror(self.store)
        self.state_writer = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="state")
        self.backend = SageMakerBackend(
            info.region,
            training=self.training,
            hosting=self.hosting,
            store=self.store,
            assumable_role=iam_simulation.assumable_by_sagemaker,
        )
        self.training.backend = self.backend
        self.control_plane = SageMakerResponses(self.backend)
        self.invocations = InvocationHandler(self.backend, self.metrics, info.region, self.hosting.executor)
        self.moto = moto_application()
        self.authenticator = Authenticator(info.access_key_id, info.secret_access_key, info.region)
        self.authenticator.secrets[self.own_key] = own_secret

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request.from_scope(scope, receive)
        service_scope = credential_scope(request.headers.get("authorization"), request.query_string)
        # an InvokeEndpoint call: read once, for the signature check's body limit and for routing
        endpoint_name = endpoint_name_from_path(request.raw_path) if request.method == "POST" else None
        refusal = await self._authenticate(request, service_scope, endpoint_name is not None)
        if refusal is not None:
            await refusal.send(send)
            return
        if not self.ready and not request.path.startswith("/_local/") and not self._own(service_scope):
            await self._not_ready(request, service_scope).send(send)
            return
        if request.path.startswith("/_local/"):
            response = self._admin(request)
        elif service_scope is not None and service_scope.service == "sagemaker":
            response = await self._sagemaker(request, endpoint_name)
        elif service_scope is not None and service_scope.service == "iam" and iam_simulation.is_simulation(request):
            response = iam_simulation.simulate_principal_policy(request)  # moto has no policy simulator
        else:
            await self._moto(scope, request, receive, send, service_scope)
            return
        await response.send(send)

    async def _moto(self, scope, request: Request, receive, send, service_scope) -> None:
        """moto answers; an S3 change it accepts is written to the state store before the caller
        hears of it (so that it survives a kill -9)."""
        receive = request.replay() if request.body_read else receive
        change = None
        if service_scope is None or service_scope.service == "s3":  # no SigV4 scope: S3's SigV2 query signature
            change = change_of(request.method, request.raw_path, request.query_string)
        if change is None:
            await self.moto(scope, receive, send)
            return
        held: list[dict] = []

        async def hold(message):
            held.append(message)

        await self.moto(scope, receive, hold)
        if held and held[0].get("status", 500) < 300:
            await asyncio.get_running_loop().run_in_executor(self.state_writer, self.s3_mirror.apply, change)
        for message in held:
            await send(message)

    async def _authenticate(self, request: Request, service_scope, invocation: bool) -> Response | None:
        """None if the request is signed with the service's credentials, else the refusal to send.

        Nothing is answered about a request before its signature holds: not its size, not whether
        its endpoint exists. S3 signs the hash its body declares (``moto_guard`` checks the body
        against it as it streams to moto); any other header-signed body is hashed as it arrives,
        whatever its size, and kept up to its handler's limit. A body over the limit is refused
        (413) only once its signature is known good."""
        try:
            if service_scope is not None and service_scope.service == "s3" or "authorization" not in request.headers:
                self.authenticator.check(request, None)  # S3, presigned and unsigned requests: no body hash
                return None
            limit = MAX_PAYLOAD if invocation else MAX_SIGNED_BODY
            length = request.headers.get("content-length", "")
            if not (length.isdigit() and int(length) <= limit):
                self.authenticator.precheck(request)  # a key, date or region that cannot pass: no body read
            self.authenticator.check(request, await request.hash_body(limit))
        except AuthFailure as failure:
            return denied(failure, protocol_of(request, service_scope))
        too_large = request.too_large
        if too_large is not None and not invocation:  # the runtime answers its own 413, as AWS's
            return Response.json({"message": f"request body over {too_large.limit:,} bytes"}, status=413)
        return None

    def _own(self, service_scope) -> bool:
        return service_scope is not None and service_scope.access_key_id == self.own_key

    def _not_ready(self, request: Request, service_scope) -> Response:
        """Until the state is restored, a request would see half of it (and a restored object could
        land over a newer PUT): 503, which every AWS SDK retries, with when to retry."""
        response = aws_error(
            protocol_of(request, service_scope),
            503,
            "ServiceUnavailable",
            "The local service is restoring its state; retry in a moment.",
        )
        # the body is not read: the connection is closed after the answer, not left mid-request
        response.headers += [(b"retry-after", str(RETRY_AFTER_S).encode()), (b"connection", b"close")]
        return response

    async def _sagemaker(self, request: Request, endpoint_name: str | None) -> Response:
        if endpoint_name is not None:
            return await self.invocations.handle(request, endpoint_name)
        if request.headers.get("x-amz-target", "").startswith("SageMaker."):
            return await self.control_plane.handle(request)
        return error_response(UnknownOperation(f"{request.method} {request.path} is not a SageMaker operation"))

    def _admin(self, request: Request) -> Response:
        """What AWS does not show: health, and the models an endpoint has loaded right now."""
        if request.path == HEALTH_PATH:
            return Response.json(
                {
                    "status": "ok" if self.ready else "starting",
                    "pid": os.getpid(),
                    "uptime_s": round(time.time() - self.started, 1),
                    "profile": self.profile.name,
                },
                status=200 if self.ready else 503,
            )
        if self.profile.aws_like:  # AWS has no such path: 404, an unknown operation
            unknown = UnknownOperation(f"{request.method} {request.path} is not a SageMaker operation")
            unknown.status = 404
            return error_response(unknown)
        parts = request.path.split("/")
        if len(parts) == 5 and parts[2] == "endpoints" and parts[4] == "models":
            endpoint = self.backend.serving_endpoint(unquote(parts[3]))
            if endpoint is None:
                return Response.json({"message": f"no endpoint {parts[3]}"}, status=404)
            runtime = endpoint.runtime
            answer = {"endpoint": endpoint.name, "status": endpoint.status}
            if runtime is not None:
                answer.update(runtime.snapshot())
            return Response.json(answer)
        return Response.json({"message": f"unknown local path {request.path}"}, status=404)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                self.metrics.start()
                threading.Thread(target=self._bootstrap, name="bootstrap", daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # in a thread: a runtime's registries are closed on the loop, which must stay free
                await asyncio.get_running_loop().run_in_executor(None, self._shut_down)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _shut_down(self) -> None:
        """After the last request has been answered (uvicorn waits for them): nothing acknowledged
        left unwritten, nothing left running. The metrics thread stops first (CloudWatch goes with
        the process: there is nowhere to flush to); training stops (a running job is failed with
        the reason at the next start); every endpoint's runtime is closed and its disk cache
        deleted; pending state writes are drained."""
        self.metrics.stop()
        self.training.shutdown()
        self.backend.shutdown(wait=True)  # provisioning under way finishes (its runtime is torn down next)
        with self.backend.lock:
            runtimes = [e.runtime for e in self.backend.endpoints.values() if e.runtime is not None]
        for runtime in runtimes:
            self.hosting.teardown(runtime, metrics=False)
        self.hosting.executor.shutdown(wait=True, cancel_futures=True)
        self.state_writer.shutdown(wait=True)
        plural = "" if len(runtimes) == 1 else "s"
        print(f"stopping: tore down {len(runtimes)} endpoint runtime{plural}, state writes drained", flush=True)

    def _bootstrap(self) -> None:
        """The stored state back, then the account's starting state: the role SageMaker runs as,
        and the SDK's default bucket. Until it is done, only the service's own requests are served."""
        try:
            remove_caches(self.home)  # no runtime exists yet: every cache folder is a dead service's
            objects = self.s3_mirror.restore()
            endpoints = self.backend.restore()
            if objects or endpoints:
                print(f"restored {objects} S3 objects and the SageMaker resources from {self.store.root}", flush=True)
            self.training.warm_up()
            execution_role.ensure(self.clients.iam)
            s3 = self.clients.s3
            bucket = default_bucket(self.info.region)
            # S3 refuses us-east-1 as a LocationConstraint: there, a bucket is created without one
            location = {} if self.info.region == "us-east-1" else {"LocationConstraint": self.info.region}
            try:
                s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {}))
            except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                pass
            self.backend.provision_restored(endpoints)
            self.ready = True
        except Exception as exc:  # the log says what went wrong, and the service stops (start reports it)
            self.failed = repr(exc)
            print(f"bootstrap failed: {exc!r}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)


def _unbuffered_object_files() -> None:
    """moto spills a large S3 object to a temporary file that keeps an 8 KB read buffer for as
    long as the object lives: 80 MB for 10,000 model artifacts. Unbuffered, the file costs nothing
    in memory (reads and writes are whole objects anyway)."""
    import functools
    import tempfile
    import types

    import moto.s3.models as s3_models

    shim = types.SimpleNamespace(**{name: getattr(tempfile, name) for name in dir(tempfile) if not name.startswith("__")})
    shim.SpooledTemporaryFile = functools.partial(tempfile.SpooledTemporaryFile, buffering=0)
    s3_models.tempfile = shim


def serve(home: Path, port: int, region: str, training_workers: int | None = None) -> None:
    """Bind, publish ``service.json``, and serve until SIGTERM."""
    import uvicorn
    import xgboost  # noqa: F401  (loaded once here, not on the first cold model load)

    from .loopback import install_guard

    install_guard(strict=True)  # nothing in this process may reach beyond 127.0.0.1
    # moto keeps S3 objects in memory up to this size and larger ones in temporary files: with
    # thousands of model artifacts, memory stays for the models (every object is on disk anyway).
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(MOTO_IN_MEMORY_OBJECT_BYTES))
    _unbuffered_object_files()

    private_folder(home)  # 0700: it holds the service's credentials
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        print(f"cannot listen on {HOST}:{port}: {exc.strerror}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    sock.listen(1024)
    key, secret = StateStore(home).credentials(new_credentials)
    info = ServiceInfo(
        pid=os.getpid(),
        port=sock.getsockname()[1],
        region=region,
        access_key_id=key,
        secret_access_key=secret,
        started_at=time.time(),
        home=str(home),
    )
    (home / SDK_CONFIG_FILE).write_text(sdk_config_yaml(region))
    profile = aws_like.from_environment()
    if profile.aws_like:
        aws_like.round_start_times_down()
    app = LocalAWS(info, home, training_workers, profile)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
        server_header=False,
        date_header=False,
        proxy_headers=False,  # no proxy in front: X-Forwarded-* headers are not looked for on every request
    )
    server = uvicorn.Server(config)
    shown = f", behaving as AWS: metrics per minute, {profile.metrics_delay_s:g} s late" if profile.aws_like else ""
    print(f"local AWS service listening on {info.url} (pid {info.pid}, region {region}{shown})", flush=True)
    info.save(home)
    # uvicorn handles SIGTERM while it serves (it stops taking requests, lets those under way finish,
    # then runs the lifespan shutdown: LocalAWS._shut_down) and raises it again once done: to this
    # handler, so that the process exits 0 rather than dying of the signal
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run(sockets=[sock])
    finally:
        current = ServiceInfo.load(home)
        if current is not None and current.pid == os.getpid():
            (home / "service.json").unlink(missing_ok=True)
        print("local AWS service stopped", flush=True)
    if app.failed is not None:
        raise SystemExit(1)
