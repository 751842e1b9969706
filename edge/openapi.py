"""The API description's building blocks: schemas, parameters, answers and operations written once
and reused, and the OpenAPI 3.1 document an app's parts add up to (`Description` + `Description`).

Each room describes its own routes with these (edge/description/, analytics/description/); the
app factories add up the parts of what they serve and hand the sum to edge/docs.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from edge import __version__

JSON: Final = "application/json"
HTML: Final = "text/html"
CSV: Final = "text/csv"
OPENAPI_VERSION: Final = "3.1.0"
METHODS: Final = ("get", "head", "put", "post", "patch", "delete")

Schema = dict[str, Any]
Operation = dict[str, Any]
Answer = dict[str, Any]
Parameter = dict[str, Any]
Security = list[dict[str, list[str]]]


# Schemas.

def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """The schema, or JSON null."""
    kind = schema.get("type")
    if isinstance(kind, str) and "enum" not in schema:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def text(pattern: str | None = None, *, min_length: int | None = None,
         max_length: int | None = None, fmt: str | None = None,
         description: str | None = None) -> Schema:
    schema: Schema = {"type": "string"}
    for key, value in (("pattern", pattern), ("minLength", min_length),
                       ("maxLength", max_length), ("format", fmt),
                       ("description", description)):
        if value is not None:
            schema[key] = value
    return schema


def integer(minimum: int | None = None, maximum: int | None = None,
            description: str | None = None) -> Schema:
    schema: Schema = {"type": "integer"}
    for key, value in (("minimum", minimum), ("maximum", maximum), ("description", description)):
        if value is not None:
            schema[key] = value
    return schema


def choice(values: Iterable[str], description: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "enum": list(values)}
    if description is not None:
        schema["description"] = description
    return schema


def array(items: Schema, *, min_items: int | None = None, max_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def answer_object(properties: Mapping[str, Schema], *, optional: Iterable[str] = (),
                  description: str | None = None) -> Schema:
    """An object the app answers with: every property present unless `optional`, more may come."""
    left_out = set(optional)
    schema: Schema = {"type": "object", "properties": dict(properties),
                      "required": [name for name in properties if name not in left_out]}
    if description is not None:
        schema["description"] = description
    return schema


def request_object(properties: Mapping[str, Schema], *, required: Iterable[str] = (),
                   description: str | None = None) -> Schema:
    """An object the app reads: only these fields (any other is refused with a 422)."""
    schema: Schema = {"type": "object", "properties": dict(properties),
                      "additionalProperties": False}
    needed = list(required)
    if needed:
        schema["required"] = needed
    if description is not None:
        schema["description"] = description
    return schema


def or_empty(schema: Schema) -> Schema:
    """A query value that may also be empty, which means the same as leaving it out."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], ""]}
    if "pattern" in schema:
        inner = schema["pattern"].removeprefix("^").removesuffix("$")
        return {**schema, "pattern": f"^(?:{inner})?$"}
    return {key: value for key, value in schema.items() if key != "minLength"}


DECIMAL_TEXT: Final = text(r"^-?[0-9]+(\.[0-9]+)?$", description="an exact decimal, as text")
TIMESTAMP: Final = text(fmt="date-time", description="ISO 8601, UTC")
EPOCH_MS: Final = integer(0, description="ms since the epoch")


# Parameters.

def query(name: str, schema: Schema, description: str, *, required: bool = False) -> Parameter:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def in_path(name: str, schema: Schema, description: str) -> Parameter:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


def header(name: str, schema: Schema, description: str) -> Parameter:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": schema}


# Answers.

def answer(description: str, content: Mapping[str, Schema] | None = None,
           headers: Mapping[str, str] | None = None) -> Answer:
    """An answer: its media types (each with its schema) and the headers it names."""
    found: Answer = {"description": description}
    if content:
        found["content"] = {media: {"schema": schema} for media, schema in content.items()}
    if headers:
        found["headers"] = {name: {"description": what, "schema": {"type": "string"}}
                            for name, what in headers.items()}
    return found


def json_answer(description: str, schema: Schema,
                headers: Mapping[str, str] | None = None) -> Answer:
    return answer(description, {JSON: schema}, headers)


# Every error answer: `{"error": {"code", "message"}}`, by status.
ERROR_ANSWERS: Final = {
    400: ("BadRequest", "the body could not be read (not JSON, not a form)"),
    401: ("Unauthorized", "no token, or not one this route takes"),
    403: ("Forbidden", "a valid token outside its scope"),
    404: ("NotFound", "no such partner, link, plan or page"),
    409: ("Conflict", "taken already, or not possible in this state"),
    410: ("Gone", "a sign-in link that expired or was used"),
    413: ("TooLarge", "the body is longer than the route takes"),
    422: ("InvalidInput", "a value broke a rule: the message names it and the limit"),
    429: ("TooManyRequests", "too many at once: retry when one has finished"),
    502: ("UpstreamError", "cTrader refused the work"),
    503: ("Unavailable", "a store or cTrader did not answer: retry later"),
}


def errors(*statuses: int) -> dict[int | str, Answer]:
    return {status: {"$ref": f"#/components/responses/{ERROR_ANSWERS[status][0]}"}
            for status in statuses}


# Operations.

ADMIN: Final[Security] = [{"admin": []}]


def operation(summary: str, *, tag: str, answers: Mapping[int | str, Answer],
              security: Security | None = None, parameters: Iterable[Parameter] = (),
              body: Mapping[str, Schema] | None = None, body_required: bool = True,
              example: Any = None, description: str | None = None) -> Operation:
    """One method of one path. `body` maps media types to schemas (`example`: a body of the
    first, as /docs shows it); `security` None is public."""
    described: Operation = {"tags": [tag], "summary": summary}
    if description is not None:
        described["description"] = description
    if security is not None:
        described["security"] = security
    listed = list(parameters)
    if listed:
        described["parameters"] = listed
    if body is not None:
        content = {media: {"schema": schema} for media, schema in body.items()}
        if example is not None:
            content[next(iter(content))]["example"] = example
        described["requestBody"] = {"required": body_required, "content": content}
    described["responses"] = {str(status): found for status, found in answers.items()}
    return described


# The description of an app, added up from its parts.

@dataclass(frozen=True)
class Description:
    paths: Mapping[str, Mapping[str, Operation]] = field(default_factory=dict)
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def __add__(self, other: Description) -> Description:
        paths = {path: dict(methods) for path, methods in self.paths.items()}
        for path, methods in other.paths.items():
            for method, described in methods.items():
                if method in paths.get(path, {}):
                    raise ValueError(f"{method.upper()} {path} is described twice")
                paths.setdefault(path, {})[method] = described
        components = {section: dict(named) for section, named in self.components.items()}
        for section, named in other.components.items():
            mine = components.setdefault(section, {})
            for name, value in named.items():
                if name in mine and mine[name] != value:
                    raise ValueError(f"components/{section}/{name} is described twice, "
                                     "differently")
                mine[name] = value
        return Description(paths, components, {**self.tags, **other.tags})

    def operations(self) -> set[tuple[str, str]]:
        """(path, METHOD) of every described operation."""
        return {(path, method.upper()) for path, methods in self.paths.items()
                for method in methods}


ERROR: Final = answer_object({
    "error": answer_object({
        "code": text(description="what went wrong, for programs: invalid_input, not_found, …"),
        "message": text(description="what went wrong and what to do, for people"),
        "field": text(description="the plan field at fault (PUT /api/plans/…)"),
        "details": array(answer_object({
            "index": integer(0), "field": text(), "message": text(),
        }), max_items=1000),
    }, optional=("field", "details")),
})

KERNEL: Final = Description(components={
    "schemas": {"Error": ERROR},
    "responses": {name: json_answer(why, ref("Error"))
                  for name, why in ERROR_ANSWERS.values()},
    "securitySchemes": {
        "admin": {"type": "http", "scheme": "bearer",
                  "description": "INVITE_ADMIN_TOKEN (generated once and printed by invite run)"},
    },
})


HEALTH: Final = Description(
    paths={
        "/healthz": {"get": operation(
            "The process is up", tag="operations",
            description="Asks no dependency: for a liveness probe.",
            answers={200: json_answer("up", answer_object({"status": choice(["ok"])}))},
        )},
        "/readyz": {"get": operation(
            "The dependencies answer", tag="operations",
            description="Each dependency's state by name (`ok`, or why not), for a readiness "
                        "probe; the edge adds its spool's depth.",
            answers={
                200: json_answer("every dependency answers", ref("Readiness")),
                503: json_answer("a dependency does not answer", ref("Readiness")),
            },
        )},
    },
    components={"schemas": {"Readiness": {
        **answer_object({"status": choice(["ready", "unavailable"])}),
        "additionalProperties": {"type": ["string", "integer"]},
    }}},
    tags={"operations": "Probes and metrics for the people who run the service"},
)


def document(description: Description, *, title: str, summary: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of an app serving what `description` describes."""
    whole = KERNEL + description
    paths = {
        path: {method: whole.paths[path][method] for method in METHODS
               if method in whole.paths[path]}
        for path in sorted(whole.paths)
    }
    components = {section: dict(sorted(named.items()))
                  for section, named in sorted(whole.components.items())}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": __version__, "summary": summary,
                 "description": "Errors answer `{\"error\": {\"code\", \"message\"}}`, with the "
                                "value at fault and its limit named in the message."},
        "tags": [{"name": name, "description": what} for name, what in whole.tags.items()],
        "paths": paths,
        "components": components,
    }
