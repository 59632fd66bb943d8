"""The sandbox's HTTP endpoint: moto's in-process server (ThreadedMotoServer) on 127.0.0.1,
behind a small WSGI layer that refuses every request not signed with the sandbox's own
credentials (auth.py), keeps moto's management API (`/moto-api/...`: its dashboard, a dump
of every backend, reset) closed, counts calls per operation, answers injected faults (armed
ones, and random ones on a share of requests: throttling, 5xx, dropped connections, slow
answers; see world.FaultPlan), answers `GET /residency-sandbox/health` so that `sandbox
status` knows whom it talks to (and which faults it injects), and `POST
/residency-sandbox/join`, where a new host joins the cluster with an SSM activation (what
the ECS Anywhere install script does on a real host; `residency sandbox join`). The join is
authenticated as SSM authenticates a registration: by the activation's secret code.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from residency_cli.sandbox.world import Fault, World, moto_module, world

HOST = "127.0.0.1"
HEALTH_PATH = "/residency-sandbox/health"
# moto routes these to its management API (moto_server/werkzeug_app.py get_application).
MOTO_API_PREFIX = "/moto-api"
MOTO_API_PATHS = ("/favicon.ico",)
JOIN_PATH = "/residency-sandbox/join"
MAX_JOIN_BODY = 64 * 1024
INTERNAL_HEADER = "X-Residency-Sandbox-Internal"
_JSON_TARGETS = {
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "Logs_20140328": "logs",
    "AmazonSSM": "ssm",
}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Operation:
    service: str
    name: str
    protocol: str  # json | query | rest


def _s3_operation(method: str, path: str, query: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "ListBuckets"
    if len(parts) == 1:
        if method == "PUT":
            return "CreateBucket"
        if method == "DELETE":
            return "DeleteBucket"
        if method == "HEAD":
            return "HeadBucket"
        if "location" in query:
            return "GetBucketLocation"
        return "ListObjectsV2" if "list-type=2" in query else "ListObjects"
    return {
        "PUT": "PutObject",
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "DELETE": "DeleteObject",
        "POST": "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload",
    }.get(method, method)


def identify(environ: dict[str, Any]) -> Operation:
    """Which AWS operation a request is, from X-Amz-Target, the form's Action, or S3's path.

    May read (and put back) the request body of query-protocol calls.
    """
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    scope = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope.group(2) if scope else ""
    if target and "." in target:
        prefix, name = target.rsplit(".", 1)
        return Operation(_JSON_TARGETS.get(prefix, service or prefix.lower()), name, "json")
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        if action:
            return Operation(service or "query", action, "query")
    method = environ.get("REQUEST_METHOD", "GET")
    if service == "s3" or not service:
        name = _s3_operation(method, environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
        return Operation(service or "s3", name, "rest")
    return Operation(service, f"{method} {environ.get('PATH_INFO', '')}", "rest")


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _error_response(operation: Operation, fault: Fault) -> tuple[str, list[tuple[str, str]], bytes]:
    status = f"{fault.status} {_REASONS.get(fault.status, 'Error')}"
    request_id = f"sandbox-{time.monotonic_ns()}"
    if operation.protocol == "json":
        body = json.dumps({"__type": fault.code, "message": fault.message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1")]
    elif operation.protocol == "query":
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{fault.code}</Code><Message>{fault.message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        body = (
            f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml")]
    headers += [("x-amzn-RequestId", request_id), ("Content-Length", str(len(body)))]
    return status, headers, body


def _json_response(
    start_response: StartResponse, status: str, payload: dict[str, Any]
) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def join(environ: dict[str, Any], start_response: StartResponse, sandbox: World) -> list[bytes]:
    """`POST /residency-sandbox/join` with a JSON object {hostname, activation_id,
    activation_code, cluster, region, attributes}: 200 {instance_id, container_instance_arn,
    hostname, cluster, region, activation_id, attributes}, or 400 {error, message} (error:
    InvalidRequest, InvalidHostname, InvalidAttributes, InvalidRegion, InvalidActivationId,
    InvalidActivation, ActivationExpired, RegistrationLimitExceeded,
    ClusterNotFoundException, HostAlreadyRegistered); 405 for another method."""
    from residency_cli.sandbox.moto_ext import JoinRefused, join_host

    if environ.get("REQUEST_METHOD", "GET") != "POST":
        return _json_response(
            start_response,
            "405 Method Not Allowed",
            {"error": "MethodNotAllowed", "message": f"{JOIN_PATH} takes POST"},
        )
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    try:
        if not 0 < length <= MAX_JOIN_BODY:
            raise ValueError(f"a JSON body of 1 to {MAX_JOIN_BODY} bytes is required")
        request = json.loads(environ["wsgi.input"].read(length))
        if not isinstance(request, dict):
            raise ValueError("the body must be a JSON object")
        for key in ("cluster", "region"):
            if request.get(key) is not None and not isinstance(request[key], str):
                raise ValueError(f"{key} must be a string")
    except ValueError as problem:
        return _json_response(
            start_response, "400 Bad Request", {"error": "InvalidRequest", "message": str(problem)}
        )
    region = request.get("region") or sandbox.region
    try:
        host = join_host(
            request.get("hostname"),
            request.get("activation_id"),
            request.get("activation_code"),
            cluster=request.get("cluster") or "default",
            region=region,
            attributes=request.get("attributes"),
        )
    except JoinRefused as refused:
        return _json_response(
            start_response, "400 Bad Request", {"error": refused.code, "message": refused.message}
        )
    return _json_response(
        start_response,
        "200 OK",
        {
            "instance_id": host.instance_id,
            "container_instance_arn": host.container_instance_arn,
            "hostname": host.hostname,
            "cluster": host.cluster,
            "region": host.region,
            "activation_id": request.get("activation_id"),
            "attributes": request.get("attributes") or {},
        },
    )


MAX_REFUSED_BODY = 8 * 1024 * 1024


def _discard_body(environ: dict[str, Any]) -> bool:
    """Read and drop a refused request's body, so that the client reads the refusal rather
    than a reset connection, and the connection stays usable. False when the body is over
    MAX_REFUSED_BODY (the connection is then closed after the answer)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return True
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    if length > MAX_REFUSED_BODY:
        return False
    remaining = (
        length if length > 0 else (MAX_REFUSED_BODY if environ.get("wsgi.input_terminated") else 0)
    )
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            return True
        remaining -= len(chunk)
    return length > 0 or not environ.get("wsgi.input_terminated") or not stream.read(1)


def _refuse(
    environ: dict[str, Any], start_response: StartResponse, status: int, code: str, message: str
) -> list[bytes]:
    """An AWS-shaped error for the protocol the request speaks; moto never sees the request
    (what was asked of it does not happen)."""
    operation = identify(environ)
    answer_status, headers, body = _error_response(operation, Fault(code, status, message, 1))
    if not _discard_body(environ):
        headers.append(("Connection", "close"))
    start_response(answer_status, headers)
    return [body]


class SandboxMiddleware:
    """Authentication, counting, fault injection, health and host joins in front of moto's
    WSGI application."""

    def __init__(self, app: Callable[..., Iterable[bytes]], sandbox: World) -> None:
        self.app = app
        self.world = sandbox

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH:
            return self._health(start_response)
        if path == JOIN_PATH:
            return join(environ, start_response, self.world)
        if path.startswith(MOTO_API_PREFIX) or path in MOTO_API_PATHS:
            # Its dashboard and data.json show every request's parameters (environment
            # overrides with passwords), and reset/seed change everything: closed to all.
            return _refuse(
                environ,
                start_response,
                403,
                "AccessDenied",
                "moto's management API is disabled in the residency sandbox",
            )
        from residency_cli.sandbox.auth import error_code, verify

        refusal = verify(environ, self.world.credentials)
        if refusal is not None:
            http_status, code = error_code(refusal, identify(environ).protocol)
            return _refuse(environ, start_response, http_status, code, refusal.message)
        if environ.get("HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")) == "1":
            return self.app(environ, start_response)
        return self._counted(environ, start_response)

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        """What `residency sandbox status` asks: is this a sandbox, and what faults it injects."""
        faults = self.world.faults
        body = json.dumps(
            {
                "residency_sandbox": True,
                "pid": os.getpid(),
                "region": self.world.region,
                "faults": faults.plan.spec or None,
                "fault_seed": faults.seed if faults.plan else None,
            }
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    def _counted(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """An authenticated AWS request: counted, then handled by moto, delayed, or answered
        with the fault (a scripted one first, else a random one) the world decides."""
        operation = identify(environ)
        if operation.service == "ecs" and self.world.enabled:
            from residency_cli.sandbox.moto_ext import forget_expired

            forget_expired(self.world)
        fault, injection = self.world.faults.record_call(operation.service, operation.name)
        if fault is None and injection is not None:
            if injection.kind == "slow":
                time.sleep(injection.delay)
                return self.app(environ, start_response)
            fault = injection.fault()
        if fault is None:
            return self.app(environ, start_response)
        if fault.after:
            self._handle_and_discard(environ)
        if fault.kind == "reset":
            _drop_connection(environ, handled=fault.after)
        status, headers, body = _error_response(operation, fault)
        start_response(status, headers)
        return [body]

    def _handle_and_discard(self, environ: dict[str, Any]) -> None:
        """moto handles the request (its effect happens); its answer is thrown away."""

        def ignore(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
            return lambda data: None

        answer = self.app(environ, ignore)
        try:
            for _ in answer:
                pass
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()


def _drop_connection(environ: dict[str, Any], *, handled: bool) -> None:
    """Close the client's connection without an answer (a reset: SO_LINGER 0), and end the
    request as a dropped connection, which werkzeug handles quietly. The client sees the
    connection closed before a response (botocore: ConnectionClosedError, retried)."""
    if not handled:  # an unread body would be read as the next request on this connection
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > 0:
                environ["wsgi.input"].read(length)
        except (OSError, ValueError):
            pass
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionResetError("connection dropped by the sandbox's fault injection")


class PortInUseError(OSError):
    """Another process listens on the port."""


class SandboxServer:
    """moto's ThreadedMotoServer with the sandbox's layer, on 127.0.0.1 only."""

    def __init__(self, port: int = 0, region: str = "us-east-1", workdir: Path | None = None):
        self.port = port
        self.region = region
        self.workdir = workdir or Path.cwd()
        self._server: Any = None
        self.endpoint = ""

    def start(self) -> str:
        from residency_cli.sandbox import moto_ext

        moto_ext.install()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        ThreadedMotoServer = moto_module("moto.moto_server.threaded_moto_server").ThreadedMotoServer
        werkzeug_app = moto_module("moto.moto_server.werkzeug_app")
        DomainDispatcherApplication = werkzeug_app.DomainDispatcherApplication
        MotoRequestHandler = werkzeug_app.MotoRequestHandler
        create_backend_app = werkzeug_app.create_backend_app
        from werkzeug.serving import make_server

        sandbox = world()

        class _Server(ThreadedMotoServer):  # type: ignore[misc,valid-type]
            def _server_entry(inner) -> None:
                app = SandboxMiddleware(DomainDispatcherApplication(create_backend_app), sandbox)
                try:
                    inner._server = make_server(
                        inner._ip_address,
                        inner._port,
                        app,
                        True,
                        request_handler=_QuietHandler,
                    )
                except OSError as error:
                    inner._error = error
                    inner._server_ready_event.set()
                    return
                inner._server_ready_event.set()
                inner._server.serve_forever()

        class _QuietHandler(MotoRequestHandler):  # type: ignore[misc,valid-type]
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        server = _Server(ip_address=HOST, port=self.port, verbose=False)
        server._error = None  # type: ignore[assignment]
        server.start()
        if server._error is not None:
            server._thread.join()
            if getattr(server._error, "errno", None) == errno.EADDRINUSE:
                raise PortInUseError(f"port {self.port} on {HOST} is already in use")
            raise server._error
        self._server = server
        host, port = server.get_host_and_port()
        self.port = int(port)
        self.endpoint = f"http://{host}:{port}"
        with sandbox.lock:
            sandbox.endpoint = self.endpoint
            sandbox.region = self.region
            sandbox.workdir = self.workdir
            sandbox.enabled = True
        return self.endpoint

    def reset(self) -> None:
        """Empty every moto backend and the sandbox's own state (no HTTP round trip)."""
        moto_api_backend = moto_module("moto.moto_api._internal.models").moto_api_backend

        sandbox = world()
        sandbox.kill_all_tasks()
        moto_api_backend.reset()
        sandbox.reset()

    def stop(self) -> None:
        sandbox = world()
        sandbox.kill_all_tasks()
        if self._server is not None:
            self._server.stop()
            self._server = None
        sandbox.enabled = False
