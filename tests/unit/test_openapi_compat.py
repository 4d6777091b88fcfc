"""The HTTP API's documented responses stay compatible with the published contract.

``openapi_responses.json`` holds, for every path and method of the published OpenAPI
document, each documented status and the response schemas it reaches. A client written
against it keeps working while the current document still documents each of those
responses with a compatible schema: every property still there with the same type, format,
enum and shape, and every property that was always present still required. New paths,
statuses, properties and descriptions are fine. Refresh the reference only on purpose
(a breaking change, announced): ``python -m tests.unit.test_openapi_compat --write``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from services.api.app import create_app
from shared.config import Settings

REFERENCE = Path(__file__).with_name("openapi_responses.json")
SHAPE_KEYS = ("type", "format", "enum", "const")
Schema = dict[str, Any]


def current_document() -> Schema:
    return create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()


def responses_view(document: Schema) -> Schema:
    """Each path's documented responses and the component schemas they reach."""
    components: Schema = document.get("components", {}).get("schemas", {})
    paths: Schema = {}
    reached: set[str] = set()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                schemas = {kind: c.get("schema", {}) for kind, c in content.items()}
                paths.setdefault(path, {}).setdefault(method, {})[status] = schemas
                for schema in schemas.values():
                    _reach(schema, components, reached)
    return {"paths": paths, "schemas": {name: components[name] for name in sorted(reached)}}


def _ref_name(schema: Schema) -> str | None:
    """The component a ``$ref`` schema names (``#/components/schemas/NAME``), if it is one."""
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _reach(schema: Any, components: Schema, reached: set[str]) -> None:
    if isinstance(schema, dict):
        name = _ref_name(schema)
        if name is not None and name not in reached:
            reached.add(name)
            _reach(components[name], components, reached)
        for value in schema.values():
            _reach(value, components, reached)
    elif isinstance(schema, list):
        for value in schema:
            _reach(value, components, reached)


def incompatibilities(reference: Schema, current: Schema) -> list[str]:
    """What a client written against ``reference`` (a ``responses_view``) would find broken
    in ``current``."""
    found: list[str] = []
    for path, methods in reference["paths"].items():
        for method, statuses in methods.items():
            for status, contents in statuses.items():
                where = f"{method.upper()} {path} {status}"
                now = current["paths"].get(path, {}).get(method, {}).get(status)
                if now is None:
                    found.append(f"{where}: no longer documented")
                    continue
                for kind, schema in contents.items():
                    if kind not in now:
                        found.append(f"{where}: no {kind} body any more")
                        continue
                    _compare(schema, now[kind], reference, current, where, found, set())
    return found


def _resolve(schema: Schema, view: Schema) -> tuple[str | None, Schema]:
    name = _ref_name(schema)
    return name, schema if name is None else view["schemas"].get(name, {})


def _compare(
    old: Schema,
    new: Schema,
    reference: Schema,
    current: Schema,
    where: str,
    found: list[str],
    seen: set[tuple[str | None, str | None]],
) -> None:
    old_name, old = _resolve(old, reference)
    new_name, new = _resolve(new, current)
    if old_name is not None:
        if (old_name, new_name) in seen:
            return
        seen = seen | {(old_name, new_name)}
        where = f"{where} {old_name}"
    for key in SHAPE_KEYS:
        if old.get(key) != new.get(key):
            found.append(f"{where}: {key} {old.get(key)!r} became {new.get(key)!r}")
    for key in ("items", "additionalProperties"):
        if isinstance(old.get(key), dict):
            if not isinstance(new.get(key), dict):
                found.append(f"{where}: no {key} any more")
            else:
                _compare(old[key], new[key], reference, current, f"{where}[]", found, seen)
    for key in ("anyOf", "oneOf", "allOf"):
        olds, news = old.get(key, []), new.get(key, [])
        if len(olds) != len(news):
            found.append(f"{where}: {key} of {len(olds)} became {len(news)}")
            continue
        for a, b in zip(olds, news, strict=True):
            _compare(a, b, reference, current, where, found, seen)
    now_properties = new.get("properties", {})
    for name, schema in old.get("properties", {}).items():
        if name not in now_properties:
            found.append(f"{where}: property {name!r} removed")
        else:
            _compare(
                schema, now_properties[name], reference, current, f"{where}.{name}", found, seen
            )
    for name in set(old.get("required", [])) - set(new.get("required", [])):
        found.append(f"{where}: property {name!r} no longer always present")


def test_the_documented_responses_stay_compatible_with_the_published_contract() -> None:
    reference = json.loads(REFERENCE.read_text())
    assert incompatibilities(reference, responses_view(current_document())) == []


def test_the_check_finds_a_removed_field_a_changed_type_and_a_dropped_response() -> None:
    reference = json.loads(REFERENCE.read_text())
    broken = copy.deepcopy(responses_view(current_document()))
    detail = broken["schemas"]["OnboardingDetail"]
    name = next(iter(detail["properties"]))
    del detail["properties"][name]
    escalation = broken["schemas"]["EscalationOut"]["properties"]
    escalation["level"] = {"type": "string"}
    del broken["paths"]["/v1/escalations"]["get"]["200"]
    found = incompatibilities(reference, broken)
    assert (
        f"GET /v1/onboardings/{{onboarding_id}} 200 OnboardingDetail: property {name!r} removed"
        in found
    )
    assert any(f.endswith("EscalationOut.level: type 'integer' became 'string'") for f in found)
    assert "GET /v1/escalations 200: no longer documented" in found


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    REFERENCE.write_text(
        json.dumps(responses_view(current_document()), indent=1, sort_keys=True) + "\n"
    )
