"""The OpenAPI schema says what the server does: schemathesis generates requests from it (bounded examples) and
checks every answer against it (status codes, content types, bodies); plus /docs works with no network."""

from __future__ import annotations

import re

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (hypothesis comes with schemathesis)

EXAMPLES_PER_OPERATION = 8


def test_every_answer_matches_the_schema(server):
    """Schemathesis' default checks (no 5xx; documented status codes, content types, headers and bodies) over a
    bounded, derandomised set of generated requests to every operation."""
    with httpx.Client(base_url=server.url, headers=server.headers) as http:
        document = http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.call_and_validate(base_url=server.url, headers=server.headers)

        try:
            check()
        except Exception as err:  # one operation's failure must not hide the others'
            failures.append(f"{operation.method.upper()} {operation.path}: {' '.join(str(err).split())[:600]}")
    assert operations >= 15
    assert not failures, "\n".join(failures)


def test_schema_describes_health_datatypes_and_errors(client):
    schema = client.get("/openapi.json").json()
    live = schema["paths"]["/v2/health/live"]["get"]["responses"]
    assert live["200"].get("content", {}) == {}  # empty body, no content type
    ready = schema["paths"]["/v2/models/{model_name}/ready"]["get"]["responses"]
    assert set(ready) >= {"200", "400", "404"}
    datatype = schema["components"]["schemas"]["RequestInput"]["properties"]["datatype"]
    assert "FP32" in datatype["enum"] and "FP16" in datatype["enum"] and "BOOL" in datatype["enum"]
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            assert "422" not in operation["responses"], path  # validation errors are 400 with the error body
            if "{model_name}" in path:
                assert "404" in operation["responses"], path


def test_schema_datatypes_are_the_ones_the_server_converts():
    from vitrt.serve.protocol import DATATYPES
    from vitrt.serve.schemas import DATATYPE_NAMES

    assert list(DATATYPE_NAMES) == list(DATATYPES)


def test_docs_page_loads_its_assets_from_this_server(server):
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
    flat = [u for pair in urls for u in pair if u]
    assert flat and not [u for u in flat if re.match(r"(https?:)?//", u)], flat  # nothing from a CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        (url,) = [u for u in flat if u.endswith(asset)]
        response = httpx.get(f"{server.url}{url}")
        assert response.status_code == 200 and len(response.content) > 10_000, url
    assert "SwaggerUIBundle" in httpx.get(f"{server.url}/docs/assets/swagger-ui-bundle.js").text
