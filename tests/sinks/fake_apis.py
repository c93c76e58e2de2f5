"""Look-alikes of the APIs driftd's webhook presets call, each a real HTTP server on 127.0.0.1.

Each checks what the real API documents it checks (path, method, authentication, required body
fields and their types and limits) and answers with the real API's status and body shape, so
a preset that passes here sends what the real service accepts. They record every request, and
keep the state a test asserts on (DAG runs, dispatches, open and resolved alerts).

Where the real API's behaviour for an odd input is not documented (unknown fields), these
reject it: a preset must send only what the API documents.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from driftd.monitor.demo.receivers import _Receiver


class Refuse(Exception):
    """Answer the request with `status` and this JSON body (raised from inside a check)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class FakeApi(_Receiver):
    """Records `{method, path, query, headers, body, status, answer}` per request and answers
    with `handle()`; a handler raises `Refuse` to answer an error."""

    def __init__(self) -> None:
        super().__init__(None, None)

    def handle(self, method: str, path: str, query: dict[str, list[str]],
               headers: dict[str, str], body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def _answer(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = ValueError  # a marker: the handler answers as its API does
        try:
            status, answer = self.handle(method, unquote(parts.path), parse_qs(parts.query),
                                         lower, parsed)
        except Refuse as refused:
            status, answer = refused.status, refused.body
        self._record({"method": method, "path": parts.path, "query": parse_qs(parts.query),
                      "headers": lower, "body": None if parsed is ValueError else parsed,
                      "status": status, "answer": answer})
        payload = b"" if answer is None else json.dumps(answer).encode()
        return status, {"Content-Type": "application/json"}, payload


def _check_fields(body: Any, types: Mapping[str, type | tuple[type, ...]],
                  refuse: Callable[[str], Refuse]) -> dict[str, Any]:
    """`body` is an object whose fields are all known and of their documented types."""
    if not isinstance(body, dict):
        raise refuse("the request body must be a JSON object")
    for key, value in body.items():
        if key not in types:
            raise refuse(f"unknown field {key!r}")
        allowed = types[key] if isinstance(types[key], tuple) else (types[key],)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise refuse(f"field {key!r} has the wrong type ({type(value).__name__})")
    return body


def _bearer(headers: Mapping[str, str], scheme: str = "Bearer") -> str | None:
    value = headers.get("authorization", "")
    prefix = scheme + " "
    return value[len(prefix):].strip() if value.startswith(prefix) else None


class FakeAirflow(FakeApi):
    """Airflow 2 stable REST API, `POST /api/v1/dags/{dag_id}/dagRuns` (post_dag_run).

    Basic auth (`username`/`password`) or a bearer `token`; JSON only (415 otherwise); the
    body is a DAGRun: `dag_run_id`, `logical_date`, `execution_date`, `data_interval_start`,
    `data_interval_end` (strings or null), `conf` (object), `note`; anything else is 400. An
    unknown DAG is 404, a `dag_run_id` already used is 409. Errors are problem+json.
    """

    FIELDS: Mapping[str, type | tuple[type, ...]] = {
        "dag_run_id": (str, type(None)), "logical_date": (str, type(None)),
        "execution_date": (str, type(None)), "data_interval_start": (str, type(None)),
        "data_interval_end": (str, type(None)), "conf": (dict, type(None)),
        "note": (str, type(None)),
    }

    def __init__(self, dags: set[str], *, username: str | None = None,
                 password: str | None = None, token: str | None = None) -> None:
        super().__init__()
        self.dags = dags
        self._basic = (base64.b64encode(f"{username}:{password}".encode()).decode()
                       if username is not None else None)
        self._token = token
        self.runs: list[dict[str, Any]] = []

    @staticmethod
    def _problem(status: int, title: str, detail: str) -> Refuse:
        return Refuse(status, {"detail": detail, "status": status, "title": title,
                               "type": "https://airflow.apache.org/docs/apache-airflow/stable/"
                                       "stable-rest-api-ref.html#section/Errors"})

    def handle(self, method, path, query, headers, body):
        match = re.fullmatch(r"/api/v1/dags/([^/]+)/dagRuns", path)
        if match is None:
            raise self._problem(404, "Not Found", "The requested URL was not found on the server.")
        if method != "POST":
            raise self._problem(405, "Method Not Allowed", "The method is not allowed.")
        authorized = (self._basic is not None and _bearer(headers, "Basic") == self._basic) or (
            self._token is not None and _bearer(headers) == self._token)
        if not authorized:
            raise self._problem(401, "Unauthorized",
                                "The server could not verify that you are authorized.")
        if not headers.get("content-type", "").startswith("application/json"):
            raise self._problem(415, "Unsupported Media Type",
                                "Invalid Content-type, expected JSON data")
        if body is ValueError:
            raise self._problem(400, "Bad Request", "Request body is not valid JSON")
        _check_fields(body, self.FIELDS, lambda m: self._problem(400, "Bad Request", m))
        dag_id = match.group(1)
        if dag_id not in self.dags:
            raise self._problem(404, "DAG not found", f"DAG with dag_id: '{dag_id}' not found")
        run_id = body.get("dag_run_id") or f"manual__{_now()}"
        if any(r["dag_id"] == dag_id and r["dag_run_id"] == run_id for r in self.runs):
            raise self._problem(409, "Conflict", f"DAGRun with DAG ID: '{dag_id}' and DAGRun "
                                                 f"ID: '{run_id}' already exists")
        run = {"dag_id": dag_id, "dag_run_id": run_id, "conf": body.get("conf") or {},
               "logical_date": body.get("logical_date") or _now(), "state": "queued",
               "run_type": "manual", "external_trigger": True, "note": body.get("note")}
        self.runs.append(run)
        return 200, run


class FakeGitHub(FakeApi):
    """GitHub REST, `POST /repos/{owner}/{repo}/dispatches` (create a repository dispatch).

    A token (`Authorization: Bearer` or `token`) with access to the repository, else 401 (bad
    token) or 404 (unknown repository); a `User-Agent` (403 without); `event_type` a string of
    1 to 100 characters and `client_payload` an object of at most 10 top-level properties,
    else 422. Success is 204 with no body.
    """

    def __init__(self, repos: set[str], token: str) -> None:
        super().__init__()
        self.repos = repos
        self._token = token
        self.dispatches: list[dict[str, Any]] = []

    @staticmethod
    def _error(status: int, message: str) -> Refuse:
        return Refuse(status, {"message": message,
                               "documentation_url": "https://docs.github.com/rest/repos/repos"
                                                    "#create-a-repository-dispatch-event",
                               "status": str(status)})

    def handle(self, method, path, query, headers, body):
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)/dispatches", path)
        if match is None or method != "POST":
            raise self._error(404, "Not Found")
        if not headers.get("user-agent"):
            raise self._error(403, "Request forbidden by administrative rules. Please make "
                                   "sure your request has a User-Agent header")
        token = _bearer(headers) or _bearer(headers, "token")
        if token != self._token:
            raise self._error(401, "Bad credentials")
        if match.group(1) not in self.repos:
            raise self._error(404, "Not Found")
        if body is ValueError:
            raise self._error(400, "Problems parsing JSON")
        if not isinstance(body, dict):
            raise self._error(422, "Invalid request.\n\nFor 'links/0/schema', the body is not "
                                   "an object.")
        event_type = body.get("event_type")
        if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
            raise self._error(422, "Invalid request.\n\n\"event_type\" wasn't supplied or is "
                                   "not a string of at most 100 characters.")
        payload = body.get("client_payload", {})
        if not isinstance(payload, dict):
            raise self._error(422, "Invalid request.\n\nFor 'properties/client_payload', "
                                   f"{type(payload).__name__} is not an object.")
        if len(payload) > 10:
            raise self._error(422, "Invalid request.\n\nNo more than 10 properties are "
                                   f"allowed; {len(payload)} were supplied.")
        self.dispatches.append({"repo": match.group(1), "event_type": event_type,
                                "client_payload": payload})
        return 204, None


class FakeArgo(FakeApi):
    """Argo Server, `POST /api/v1/workflows/{namespace}/submit` (WorkflowService.SubmitWorkflow).

    `Authorization: Bearer <token>` (else 401, gRPC code 16); a WorkflowSubmitRequest:
    `resourceKind` (WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow), `resourceName`
    of an existing template (404, code 5, otherwise), `namespace` equal to the path's, and
    `submitOptions` whose `parameters` are "name=value" strings and `labels` a "k=v,..." string.
    Errors are gRPC-gateway JSON (`code`, `message`); success answers the created Workflow.
    """

    KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
    SUBMIT_OPTS: Mapping[str, type | tuple[type, ...]] = {
        "name": str, "generateName": str, "entryPoint": str, "parameters": list,
        "serviceAccount": str, "dryRun": bool, "serverDryRun": bool, "labels": str,
        "annotations": str, "ownerReference": dict, "podPriorityClassName": str,
        "priority": int,
    }

    def __init__(self, templates: set[tuple[str, str]], token: str) -> None:
        super().__init__()
        self.templates = templates  # (namespace, name)
        self._token = token
        self.workflows: list[dict[str, Any]] = []

    @staticmethod
    def _error(status: int, code: int, message: str) -> Refuse:
        return Refuse(status, {"code": code, "message": message})

    def handle(self, method, path, query, headers, body):
        match = re.fullmatch(r"/api/v1/workflows/([^/]+)/submit", path)
        if match is None:
            raise self._error(404, 5, "Not Found")
        if method != "POST":
            raise self._error(405, 12, "Method Not Allowed")
        if _bearer(headers) != self._token:
            raise self._error(401, 16, "token not valid. see https://argo-workflows."
                                       "readthedocs.io/en/latest/faq/")
        def invalid(message: str) -> Refuse:
            return self._error(400, 3, message)
        if body is ValueError:
            raise invalid("unexpected token in request body: not JSON")
        namespace = match.group(1)
        _check_fields(body, {"namespace": str, "resourceKind": str, "resourceName": str,
                             "submitOptions": dict}, invalid)
        if body.get("namespace", namespace) != namespace:
            raise invalid("namespace in the body does not match the path")
        if body.get("resourceKind") not in self.KINDS:
            raise invalid(f"resourceKind must be one of {', '.join(self.KINDS)}")
        name = body.get("resourceName")
        if not name:
            raise invalid("resourceName is required")
        options = _check_fields(body.get("submitOptions", {}), self.SUBMIT_OPTS, invalid)
        parameters = options.get("parameters", [])
        if not all(isinstance(p, str) and "=" in p for p in parameters):
            raise invalid("submitOptions.parameters must be \"name=value\" strings")
        labels = options.get("labels", "")
        if labels and not all(re.fullmatch(r"[\w./-]+=[\w.-]{0,63}", pair)
                              for pair in labels.split(",")):
            raise invalid("submitOptions.labels must be \"key=value,...\" with valid values")
        if (namespace, name) not in self.templates:
            raise self._error(404, 5, f'workflowtemplates.argoproj.io "{name}" not found')
        workflow = {
            "metadata": {"name": options.get("generateName", f"{name}-") + uuid.uuid4().hex[:5],
                         "namespace": namespace,
                         "labels": dict(p.split("=", 1) for p in labels.split(",") if p)},
            "spec": {"workflowTemplateRef": {"name": name},
                     "arguments": {"parameters": [dict(zip(("name", "value"), p.split("=", 1),
                                                           strict=True))
                                                  for p in parameters]}},
            "status": {},
        }
        self.workflows.append(workflow)
        return 200, workflow


class FakeKubeflow(FakeApi):
    """Kubeflow Pipelines API v2beta1, `POST /apis/v2beta1/runs` (RunService.CreateRun).

    `Authorization: Bearer <token>`; a Run: `display_name` (required), a pipeline source
    (`pipeline_version_reference` with `pipeline_id` and `pipeline_version_id` of an existing
    version, or `pipeline_spec`), `runtime_config` with `parameters` (a map of JSON values) and
    `pipeline_root`; unknown fields are 400 (protojson). Errors: `{error, code, message}`.
    """

    RUN_FIELDS: Mapping[str, type | tuple[type, ...]] = {
        "experiment_id": str, "display_name": str, "description": str,
        "pipeline_version_reference": dict, "pipeline_spec": dict, "runtime_config": dict,
        "service_account": str,
    }

    def __init__(self, versions: set[tuple[str, str]], token: str) -> None:
        super().__init__()
        self.versions = versions  # (pipeline_id, pipeline_version_id)
        self._token = token
        self.runs: list[dict[str, Any]] = []

    @staticmethod
    def _error(status: int, code: int, message: str) -> Refuse:
        return Refuse(status, {"error": message, "code": code, "message": message,
                               "details": []})

    def handle(self, method, path, query, headers, body):
        if path != "/apis/v2beta1/runs":
            raise self._error(404, 5, "Not Found")
        if method != "POST":
            raise self._error(405, 12, "Method Not Allowed")
        if _bearer(headers) != self._token:
            raise self._error(401, 16, "Unauthenticated: no valid bearer token")
        def invalid(message: str) -> Refuse:
            return self._error(400, 3, f"Invalid input error: {message}")
        if body is ValueError:
            raise invalid("request body is not JSON")
        _check_fields(body, self.RUN_FIELDS, invalid)
        if not body.get("display_name"):
            raise invalid("Failed to create a run due to missing run name")
        ref = body.get("pipeline_version_reference")
        if (ref is None) == (body.get("pipeline_spec") is None):
            raise invalid("a run needs exactly one of pipeline_version_reference and "
                          "pipeline_spec")
        if ref is not None:
            _check_fields(ref, {"pipeline_id": str, "pipeline_version_id": str}, invalid)
            key = (ref.get("pipeline_id"), ref.get("pipeline_version_id"))
            if not all(key):
                raise invalid("pipeline_version_reference needs pipeline_id and "
                              "pipeline_version_id")
            if key not in self.versions:
                raise self._error(404, 5, f"Pipeline version {key[1]} not found")
        config = _check_fields(body.get("runtime_config", {}),
                               {"parameters": dict, "pipeline_root": str}, invalid)
        run = {**body, "experiment_id": body.get("experiment_id") or "default-experiment",
               "run_id": str(uuid.uuid4()), "storage_state": "AVAILABLE", "state": "PENDING",
               "created_at": _now(), "runtime_config": config}
        self.runs.append(run)
        return 200, run


class FakePagerDuty(FakeApi):
    """PagerDuty Events API v2, `POST /v2/enqueue`.

    `routing_key` (32 characters) and `event_action` (trigger, acknowledge, resolve) are
    required; `dedup_key` at most 255 characters (required to acknowledge or resolve); a trigger
    needs `payload` with `summary` (at most 1024), `source` and `severity` (critical, error,
    warning, info). Invalid events are 400 `{"status": "invalid event", ...}`; accepted ones 202
    `{"status": "success", "message": "Event processed", "dedup_key": ...}`. Alerts are kept
    by dedup key: a trigger opens one, a resolve closes the open one (or is dropped).
    """

    SEVERITIES = ("critical", "error", "warning", "info")
    PAYLOAD: Mapping[str, type | tuple[type, ...]] = {
        "summary": str, "source": str, "severity": str, "timestamp": str, "component": str,
        "group": str, "class": str, "custom_details": (dict, str, int, float, list),
    }

    def __init__(self, routing_key: str) -> None:
        super().__init__()
        self._routing_key = routing_key
        self.alerts: dict[str, str] = {}  # dedup_key -> "triggered" | "resolved"

    @staticmethod
    def _invalid(error: str) -> Refuse:
        return Refuse(400, {"status": "invalid event", "message": "Event object is invalid",
                            "errors": [error]})

    def handle(self, method, path, query, headers, body):
        if path != "/v2/enqueue" or method != "POST":
            raise Refuse(404, {"status": "not found", "message": "Not Found"})
        if body is ValueError:
            raise self._invalid("Event object is not valid JSON")
        _check_fields(body, {"routing_key": str, "event_action": str, "dedup_key": str,
                             "payload": dict, "images": list, "links": list, "client": str,
                             "client_url": str}, self._invalid)
        key = body.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            raise self._invalid("'routing_key' is missing or not 32 characters")
        if key != self._routing_key:
            raise self._invalid("Invalid routing key")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            raise self._invalid("'event_action' is missing or invalid")
        dedup = body.get("dedup_key")
        if dedup is not None and len(dedup) > 255:
            raise self._invalid("'dedup_key' is longer than 255 characters")
        if action != "trigger" and not dedup:
            raise self._invalid(f"'dedup_key' is required to {action}")
        if action == "trigger":
            payload = _check_fields(body.get("payload"), self.PAYLOAD, self._invalid)
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    raise self._invalid(f"'payload.{field}' is missing")
            if len(payload["summary"]) > 1024:
                raise self._invalid("'payload.summary' is longer than 1024 characters")
            if payload["severity"] not in self.SEVERITIES:
                raise self._invalid("'payload.severity' is invalid")
            for link in body.get("links", []):
                if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                    raise self._invalid("'links' entries need an 'href'")
            dedup = dedup or uuid.uuid4().hex
            self.alerts[dedup] = "triggered"
        elif action == "resolve" and self.alerts.get(dedup) == "triggered":
            self.alerts[dedup] = "resolved"
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup}


class FakeOpsgenie(FakeApi):
    """Opsgenie Alert API v2: `POST /v2/alerts` (create) and `POST /v2/alerts/{identifier}/close`
    with `identifierType` id, tiny or alias.

    `Authorization: GenieKey <key>` (else 401). Create needs `message` (1 to 130 characters);
    `alias` at most 512, `description` 15000, `tags` up to 20 strings, `details` a map of
    strings, `entity` 512, `source` and `user` 100, `priority` P1 to P5; a bad field is 422.
    Requests are accepted asynchronously: 202 `{"result": "Request will be processed", ...}`.
    Alerts are kept by alias: a create opens one, a close by alias closes the open one.
    """

    CREATE: Mapping[str, type | tuple[type, ...]] = {
        "message": str, "alias": str, "description": str, "responders": list,
        "visibleTo": list, "actions": list, "tags": list, "details": dict, "entity": str,
        "source": str, "priority": str, "user": str, "note": str,
    }
    LIMITS = {"message": 130, "alias": 512, "description": 15000, "entity": 512,
              "source": 100, "user": 100, "note": 25000}

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self._api_key = api_key
        self.alerts: dict[str, str] = {}  # alias -> "open" | "closed"

    @staticmethod
    def _unprocessable(field: str, error: str) -> Refuse:
        return Refuse(422, {"message": "Request body is not processable. Please check the "
                                       "errors.", "errors": {field: error}, "took": 0.001,
                            "requestId": str(uuid.uuid4())})

    def _check_limits(self, body: dict[str, Any]) -> None:
        for field, limit in self.LIMITS.items():
            if field in body and len(body[field]) > limit:
                raise self._unprocessable(field, f"{field} can not be longer than {limit}.")

    def handle(self, method, path, query, headers, body):
        create = path == "/v2/alerts"
        close = re.fullmatch(r"/v2/alerts/([^/]+)/close", path)
        if not (create or close) or method != "POST":
            raise Refuse(404, {"message": "Not Found", "took": 0.0})
        if _bearer(headers, "GenieKey") != self._api_key:
            raise Refuse(401, {"message": "Could not authenticate", "took": 0.0,
                               "requestId": str(uuid.uuid4())})
        if body is ValueError:
            raise self._unprocessable("body", "Could not parse the request body.")

        def invalid(message: str) -> Refuse:
            return self._unprocessable("body", message)
        if create:
            _check_fields(body, self.CREATE, invalid)
            if not body.get("message"):
                raise self._unprocessable("message", "Message can not be empty.")
            self._check_limits(body)
            if not all(isinstance(t, str) for t in body.get("tags", [])) or len(
                    body.get("tags", [])) > 20:
                raise self._unprocessable("tags", "Tags must be at most 20 strings.")
            if not all(isinstance(v, str) for v in body.get("details", {}).values()):
                raise self._unprocessable("details", "Details values must be strings.")
            if body.get("priority", "P3") not in ("P1", "P2", "P3", "P4", "P5"):
                raise self._unprocessable("priority", "Priority should be one of "
                                                      "[P1, P2, P3, P4, P5]")
            self.alerts[body.get("alias") or str(uuid.uuid4())] = "open"
        else:
            kind = query.get("identifierType", ["id"])[0]
            if kind not in ("id", "tiny", "alias"):
                raise self._unprocessable("identifierType", "Invalid identifierType.")
            _check_fields(body or {}, {"user": str, "source": str, "note": str}, invalid)
            self._check_limits(body or {})
            identifier = close.group(1)
            if kind == "alias" and self.alerts.get(identifier) == "open":
                self.alerts[identifier] = "closed"
        return 202, {"result": "Request will be processed", "took": 0.002,
                     "requestId": str(uuid.uuid4())}
