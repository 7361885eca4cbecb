"""The worker's OpenAPI 3.1 document against a live worker, with schemathesis.

Schemathesis generates requests of every documented operation from the document served at
``/v1/openapi.json``; each is sent with every kind of credential (admin, the tenant's own token,
another tenant's token, an unknown token, none) and for a generated tenant id as well as a known
tenant, and every response must conform: a documented status code, content type, headers and
body schema. Every documented status code must be seen: the 503 of a worker that knows no
partition owner yet is reached deterministically by a worker joining a group whose other worker
is stopped (SIGSTOP), so that the rebalance waits for it. Every answer of a worker polled from
its first moments until it decides conforms too.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from stream_harness import (
    http_get,
    joining_a_stalled_group,
    produce,
    stallable_env,
    wait_for,
)

from fairuse.events import METRICS
from fairuse.settings import KafkaSettings
from fairuse.stream.views import openapi_document

ADMIN = "admin-token"
TOKENS = {"FAIRUSE_API_TOKEN": ADMIN, "FAIRUSE_API_TENANT_TOKENS": "acme:acme-token"}
CREDENTIALS = (ADMIN, "acme-token", "not-a-token", None)  # acme-token for others: 403
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
WHILE_NO_OWNER_IS_KNOWN = [check for check in CHECKS if check is not not_a_server_error]
EXAMPLES = 15
EXAMPLES_WHILE_NO_OWNER_IS_KNOWN = 5  # every routed request gets the same 503


def acme_events() -> list[bytes]:
    ts = 1_767_268_800_000
    return [
        orjson.dumps({"type": "api_call", "event_id": f"a{n}", "tenant_id": "acme", "ts": ts + n})
        for n in range(3)
    ]


def call(case: Any, base_url: str, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
    return case.call(base_url=base_url, headers=headers)


def conformance_of(
    operation: Any,
    base_url: str,
    seen: set[tuple[str, str]],
    checks: list[Any] = CHECKS,
    examples: int = EXAMPLES,
) -> Any:
    """A hypothesis test of ``operation``: generated cases (a known tenant too, and for the
    decision a bogus or missing metric) with every credential pass ``checks``; statuses go to
    ``seen``."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), bogus=st.text(min_size=1))
    def conforms(case: Any, bogus: str) -> None:
        variants: list[dict[str, Any]] = [{}]
        if "{tenant_id}" in operation.path:
            variants.append({"path_parameters": {**case.path_parameters, "tenant_id": "acme"}})
        if operation.path.endswith("/decision"):
            variants += [
                {"query": {"metric": bogus}} if bogus not in METRICS else {},
                {"query": {}},
            ]
        for variant in variants:
            for name, value in variant.items():
                setattr(case, name, value)
            for token in CREDENTIALS:
                response = call(case, base_url, token)
                case.validate_response(response, checks=checks)
                seen.add((operation.path, str(response.status_code)))

    return conforms


def answers_until_allowed(case: Any, base_url: str) -> list[Any]:
    """Every answer to ``case`` (with the admin token) of a worker just started, from the moment
    its web server answers until it answers 200."""
    answers: list[Any] = []

    def allowed() -> bool:
        try:
            answers.append(call(case, base_url, ADMIN))
        except requests.ConnectionError:  # the web server is not up yet
            return False
        return answers[-1].status_code == 200

    wait_for(allowed, 120, "the decision of a tenant", every_s=0.05)
    return answers


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, status)
        for path, item in document["paths"].items()
        for status in item["get"]["responses"]
    }


def test_every_operation_conforms_and_every_documented_status_is_reached(
    kafka_settings: KafkaSettings, workers
) -> None:
    produce(kafka_settings, acme_events())
    stalled = workers(**TOKENS, **stallable_env()).start()
    schema = schemathesis.openapi.from_dict(orjson.loads(openapi_document()))
    decision = schema["/v1/tenants/{tenant_id}/decision"]["GET"]
    case = decision.Case(path_parameters={"tenant_id": "acme"}, query={"metric": "api_calls"})
    for response in answers_until_allowed(case, f"http://127.0.0.1:{stalled.web_port}"):
        case.validate_response(response, checks=WHILE_NO_OWNER_IS_KNOWN)  # 503, 404, 200
    joining = workers(**TOKENS)
    port = joining.web_port
    base_url = f"http://127.0.0.1:{port}"
    seen: set[tuple[str, str]] = set()

    with joining_a_stalled_group(stalled, joining):
        status, served = http_get(port, "/v1/openapi.json")
        assert status == 200 and served == orjson.loads(openapi_document())
        assert served["openapi"] == "3.1.0"
        response = call(case, base_url, ADMIN)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == ["1"]
        assert "not known yet" in response.json()["error"]
        case.validate_response(response, checks=WHILE_NO_OWNER_IS_KNOWN)
        for result in schema.get_all_operations():
            conformance_of(
                result.ok(),
                base_url,
                seen,
                WHILE_NO_OWNER_IS_KNOWN,
                EXAMPLES_WHILE_NO_OWNER_IS_KNOWN,
            )()
        assert http_get(port, "/readyz")[1]["conditions"]["partitions_assigned"] is False

    wait_for(lambda: http_get(port, "/v1/tenants/acme/usage", ADMIN)[0] == 200, 120, "an owner")
    for result in schema.get_all_operations():
        conformance_of(result.ok(), base_url, seen)()

    missing = documented(served) - seen
    assert not missing, sorted(missing)


def test_an_undocumented_response_fails_the_check(kafka_settings: KafkaSettings, workers) -> None:
    worker = workers(**TOKENS).start()
    produce(kafka_settings, acme_events())
    port = worker.web_port
    wait_for(lambda: http_get(port, "/v1/tenants/acme/usage", ADMIN)[0] == 200, 120, "acme")
    document = copy.deepcopy(orjson.loads(openapi_document()))
    del document["paths"]["/v1/tenants/{tenant_id}/decision"]["get"]["responses"]["403"]
    operation = schemathesis.openapi.from_dict(document)["/v1/tenants/{tenant_id}/decision"]["GET"]
    case = operation.Case(path_parameters={"tenant_id": "globex"}, query={"metric": "api_calls"})
    response = call(case, f"http://127.0.0.1:{port}", "acme-token")
    assert response.status_code == 403
    with pytest.raises(FailureGroup) as failed:
        case.validate_response(response, checks=CHECKS)
    assert [type(e) for e in failed.value.exceptions] == [UndefinedStatusCode]
