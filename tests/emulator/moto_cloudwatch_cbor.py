"""Starts the emulator (moto in server mode) with CloudWatch reachable in Smithy RPC v2 CBOR.

CloudWatch speaks Smithy RPC v2 CBOR (`POST /service/GraniteServiceVersion20100801/operation/
<Operation>`, header `smithy-protocol: rpc-v2-cbor`, bodies in CBOR), the protocol AWS's Rust
SDK prefers for it. moto 5.2.5 serves CloudWatch only in AWS JSON 1.0 (`X-Amz-Target:
GraniteServiceVersion20100801.<Operation>`) and the query protocol, and answers that path
with 404 Not Found. This shim translates at the edge of moto's server, and changes nothing else:
a request on that path has its CBOR body decoded (a tag 1 timestamp becomes epoch seconds, a
byte string base64) and is passed on as the same operation in AWS JSON 1.0; the answer is
encoded back in CBOR along the operation's output shape (a timestamp, whether moto wrote epoch
seconds or ISO 8601, becomes a tag 1 timestamp over a double; a blob becomes a byte string;
numbers take their shape's type), or, for an error, as a map of `__type` (the error shape's
id) and the error's members, with the HTTP status and `x-amzn-query-error` header moto chose.
An operation without output answers with an empty body, as the protocol asks. Every other
request reaches moto untouched.

Usage: moto_cloudwatch_cbor.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import base64
import functools
import io
import json
import math
import sys
import traceback
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterable

import cbor2
from botocore.model import OperationNotFoundError, Shape
from moto.core.utils import get_service_model
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

SERVICE = "GraniteServiceVersion20100801"  # CloudWatch's Smithy service name
NAMESPACE = "com.amazonaws.cloudwatch"  # its Smithy namespace, which error types name
PREFIX = f"/service/{SERVICE}/operation/"
CBOR = "application/cbor"
PROTOCOL_HEADER = ("smithy-protocol", "rpc-v2-cbor")
# Headers of moto's answer that describe its JSON body, rewritten for the CBOR one.
BODY_HEADERS = {"content-type", "content-length", "x-amzn-errortype", "status"}


def _model() -> Any:
    return get_service_model("cloudwatch")  # the model moto serializes CloudWatch with, cached


# CBOR to AWS JSON 1.0: the request.


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items() if not _absent(v)}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, cbor2.CBORTag):
        return _to_json(value.value)
    return value


def _absent(value: Any) -> bool:
    return value is None or value is cbor2.undefined


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        return stream.read(length)
    if environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
        return stream.read()
    return b""


def _json_environ(environ: dict[str, Any], operation: str, document: Any) -> dict[str, Any]:
    body = json.dumps(document).encode()
    rewritten = dict(environ)
    rewritten.update(
        {
            "PATH_INFO": "/",
            "REQUEST_URI": "/",
            "RAW_URI": "/",
            "REQUEST_METHOD": "POST",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"{SERVICE}.{operation}",
            "HTTP_X_AMZN_QUERY_MODE": "true",
            "wsgi.input": io.BytesIO(body),
        }
    )
    rewritten.pop("wsgi.input_terminated", None)
    rewritten.pop("HTTP_TRANSFER_ENCODING", None)
    return rewritten


# AWS JSON 1.0 to CBOR: the answer.


def _timestamp(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return cbor2.CBORTag(1, float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return cbor2.CBORTag(1, float(text))
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                moment = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return cbor2.CBORTag(1, moment.timestamp())
    return value


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, str):
        if kind is float and value in ("NaN", "Infinity", "-Infinity"):
            return float(value)
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind is float:
            return float(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return value


def _to_cbor(value: Any, shape: Shape | None) -> Any:
    """Shapes a JSON value as the protocol encodes it; without a shape, keeps its JSON type."""
    if value is None:
        return None
    kind = shape.type_name if shape is not None else None
    if isinstance(value, dict):
        if kind == "structure":
            members = shape.members  # type: ignore[union-attr]
            return {
                key: _to_cbor(item, members.get(key))
                for key, item in value.items()
                if item is not None
            }
        value_shape = shape.value if kind == "map" else None  # type: ignore[union-attr]
        return {key: _to_cbor(item, value_shape) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        member = shape.member if kind == "list" else None  # type: ignore[union-attr]
        return [_to_cbor(item, member) for item in value]
    if kind == "timestamp":
        return _timestamp(value)
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value)
        except ValueError:
            return value.encode()
    if kind in ("double", "float"):
        return _number(value, float)
    if kind in ("integer", "long", "short", "byte"):
        return _number(value, int)
    if kind == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    return value


def _error_shape(code: str) -> Shape | None:
    """The error shape named `code`, or else the one whose query error code is `code`."""
    shapes = _model().error_shapes
    for shape in shapes:
        if shape.name == code:
            return shape
    for shape in shapes:
        if shape.metadata.get("error", {}).get("code") == code:
            return shape
    return None


def _error_body(status: int, body: bytes) -> dict[str, Any]:
    fallback = "InternalServiceFault" if status >= 500 else "InvalidParameterValueException"
    try:
        document = json.loads(body) if body.strip() else {}
    except ValueError:
        document = None
    if not isinstance(document, dict):  # not moto's serialized error: an HTML page, say
        text = body.decode("utf-8", "replace").strip()[:2000]
        document = {"message": text or f"HTTP {status}"}
    code = str(document.pop("__type", "") or "").split(":", 1)[0].rsplit("#", 1)[-1]
    shape = _error_shape(code or fallback)
    name = shape.name if shape is not None else code
    members = dict(shape.members) if shape is not None else {}
    by_lower_name = {member.lower(): member for member in members}
    answer: dict[str, Any] = {"__type": f"{NAMESPACE}#{name}"}
    for key, item in document.items():
        member = key if key in members else by_lower_name.get(key.lower())
        if member is None:  # moto writes `Message` and `message`: keep one message
            if key.lower() == "message" and "message" not in answer:
                answer["message"] = item
        elif member not in answer or key == member:
            answer[member] = _to_cbor(item, members[member])
    return {key: item for key, item in answer.items() if item is not None}


def _answer(
    operation: str, status: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[str, list[tuple[str, str]], bytes]:
    code = int(status.split(" ", 1)[0])
    kept = [(k, v) for k, v in headers if k.lower() not in BODY_HEADERS]
    kept.append(PROTOCOL_HEADER)
    if code >= 300:
        encoded = cbor2.dumps(_error_body(code, body))
    else:
        try:
            output = _model().operation_model(operation).output_shape
        except OperationNotFoundError:
            output = None
            has_output = bool(body.strip())
        else:
            has_output = output is not None
        if not has_output:
            kept.append(("Content-Length", "0"))
            return status, kept, b""
        try:
            document = json.loads(body) if body.strip() else {}
        except ValueError:
            status = "500 Internal Server Error"
            encoded = cbor2.dumps(_error_body(500, body))
        else:
            encoded = cbor2.dumps(_to_cbor(document, output))
    kept += [("Content-Type", CBOR), ("Content-Length", str(len(encoded)))]
    return status, kept, encoded


def _bad_request(start_response: Callable[..., Any], message: str) -> Iterable[bytes]:
    error = {"__type": f"{NAMESPACE}#InvalidParameterValueException", "message": message}
    encoded = cbor2.dumps(error)
    start_response(
        "400 Bad Request",
        [PROTOCOL_HEADER, ("Content-Type", CBOR), ("Content-Length", str(len(encoded)))],
    )
    return [encoded]


def _serve_cbor(
    inner: Callable[..., Iterable[bytes]],
    app: Any,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if isinstance(path, bytes):
        path = path.decode("utf-8")
    operation = path[len(PREFIX) :].strip("/")
    raw = _read_body(environ)
    try:
        document = cbor2.loads(raw) if raw else {}
    except (cbor2.CBORError, ValueError) as error:
        return _bad_request(start_response, f"the request body is not CBOR: {error}")
    if _absent(document):
        document = {}
    if not isinstance(document, dict):
        return _bad_request(start_response, "the request body is not a CBOR map")

    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, list(headers)
        return lambda data: captured.setdefault("written", []).append(data)

    try:
        chunks = inner(app, _json_environ(environ, operation, _to_json(document)), capture)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    except Exception as error:  # what moto has not implemented raises: answer as CloudWatch would
        traceback.print_exc(file=environ.get("wsgi.errors", sys.stderr))
        captured["status"], captured["headers"] = "500 Internal Server Error", []
        body = json.dumps({"__type": "InternalServiceFault", "message": str(error)}).encode()
    body = b"".join(captured.get("written", [])) + body
    status, headers, encoded = _answer(operation, captured["status"], captured["headers"], body)
    start_response(status, headers)
    return [encoded]


def _with_cbor(inner: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    @functools.wraps(inner)
    def dispatch(
        self: Any, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if isinstance(path, bytes):
            path = path.decode("utf-8", "replace")
        if not path.startswith(PREFIX):
            return inner(self, environ, start_response)
        return _serve_cbor(inner, self, environ, start_response)

    dispatch._cloudwatch_cbor = True  # type: ignore[attr-defined]
    return dispatch


if not getattr(DomainDispatcherApplication.__call__, "_cloudwatch_cbor", False):
    DomainDispatcherApplication.__call__ = _with_cbor(DomainDispatcherApplication.__call__)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
