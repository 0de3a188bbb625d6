"""Make pygeoapi's generated OpenAPI document self-contained and true to our routes.

pygeoapi 0.21 points many ``$ref``s at schemas.opengis.net and GitHub; clients with no
network (and ogctests) cannot resolve them.  We replace each by a local component from
``openapi_components.yml``, add the CQL2 filter parameters our items route accepts, drop the
free-form vendor parameter (unknown parameters are a 400 here), and list 400/404/500.
Operations our router does not serve (OPTIONS, and POST/PUT/PATCH/DELETE under /collections,
which pygeoapi lists for ``editable`` layers) are dropped until a route serves them, so the
document promises nothing that answers 405.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from starlette.routing import BaseRoute

_COMPONENTS = Path(__file__).with_name("openapi_components.yml")
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@lru_cache(maxsize=1)
def local_components() -> dict[str, dict[str, Any]]:
    """Our local component definitions, by ``section/name``."""
    return yaml.safe_load(_COMPONENTS.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _localise(node: Any, needed: set[str]) -> Any:
    """Rewrite remote $refs to ``#/components/...``; record which components are used."""
    if isinstance(node, list):
        return [_localise(x, needed) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        name = ref.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
        section = next(
            (k.split("/")[0] for k in local_components() if k.split("/")[1] == name), None
        )
        if section is None:
            raise ValueError(f"no local definition for remote $ref {ref}")
        needed.add(f"{section}/{name}")
        return {"$ref": f"#/components/{section}/{name}"}
    return {k: _localise(v, needed) for k, v in node.items()}


# Components whose pygeoapi definition misstates what our routes return: ours win.
_OVERRIDES = ("responses/Queryables", "responses/LandingPage")


def _route_table(served: Sequence[BaseRoute]) -> list[tuple[Any, set[str]]]:
    """(path regex, methods) of every served route."""
    return [
        (r.path_regex, set(getattr(r, "methods", None) or ()))
        for r in served
        if hasattr(r, "path_regex")
    ]


def _served(path: str, method: str, table: list[tuple[Any, set[str]]]) -> bool:
    """Whether a documented operation is answered by a route (else it would be a 405).

    pygeoapi lists OPTIONS everywhere and POST/PUT/PATCH/DELETE for ``editable`` layers; we
    keep those only once a route (e.g. in ``transactions.py``) serves them.
    """
    if method == "get" or not (method == "options" or path.startswith("/collections")):
        return True
    return any(rx.match("/ogc" + path) and method.upper() in ms for rx, ms in table)


def _items_params(op: dict[str, Any]) -> None:
    params = [
        p
        for p in op.get("parameters", [])
        if p.get("$ref") != "#/components/parameters/vendorSpecificParameters"
    ]
    # Core: every items operation takes datetime (features without time all match), but
    # pygeoapi lists it only for layers with a temporal property.
    if not any(
        p.get("$ref") == "#/components/parameters/datetime" or p.get("name") == "datetime"
        for p in params
    ):
        params.append({"$ref": "#/components/parameters/datetime"})
    for name in ("filter", "filter-lang", "filter-crs"):
        params.append({"$ref": f"#/components/parameters/{name}"})
    op["parameters"] = params


# What a write (transactions: token-protected) can answer besides 400/404/500.
_WRITE_ERRORS = (
    ("401", "Unauthorized"),
    ("403", "Forbidden"),
    ("409", "Conflict"),
    ("412", "PreconditionFailed"),
    ("413", "PayloadTooLarge"),
    ("415", "UnsupportedMediaType"),
    ("422", "Unprocessable"),
)


#: The success status our routes answer where pygeoapi documents another (its replace is
#: a 204, ours returns the feature; its delete a 200, ours a 204; a dismissed job is a 200
#: with the job's status, as OGC API - Processes says).  Keyed by (method, path suffix).
_SUCCESS = {("put", "/items/{featureId}"): "200", ("delete", "/items/{featureId}"): "204",
            ("delete", "/jobs/{jobId}"): "200"}


def _success(op: dict[str, Any], method: str, path: str) -> None:
    ours = next((c for (m, end), c in _SUCCESS.items() if m == method and path.endswith(end)),
                None)
    responses = op.setdefault("responses", {})
    if ours is None or ours in responses:
        return
    other = next((c for c in sorted(responses) if c.startswith("2")), None)
    responses[ours] = responses.pop(other) if other else {"description": "Success"}


def _error_responses(op: dict[str, Any], write: bool = False) -> None:
    responses = op.setdefault("responses", {})
    codes = (("400", "InvalidParameter"), ("404", "NotFound"), ("500", "ServerError"))
    for code, name in codes + (_WRITE_ERRORS if write else ()):
        responses.setdefault(code, {"$ref": f"#/components/responses/{name}"})


def patch_openapi(
    doc: dict[str, Any], config: dict[str, Any], served: Sequence[BaseRoute]
) -> dict[str, Any]:
    """Return a self-contained copy of ``doc`` describing ``served`` (the app's OGC routes,
    handed in by the composition root)."""
    needed: set[str] = set()
    doc = _localise(doc, needed)
    table = _route_table(served)
    for path, item in doc["paths"].items():
        for method in [m for m in item if m in _METHODS and not _served(path, m, table)]:
            del item[method]
        for method, op in item.items():
            if not isinstance(op, dict) or method not in ("get", "post", "put", "patch", "delete"):
                continue
            if path.endswith("/items") and method == "get":
                _items_params(op)
                needed.update(
                    {
                        "parameters/filter",
                        "parameters/filter-lang",
                        "parameters/filter-crs",
                        "parameters/datetime",
                    }
                )
            _success(op, method, path)
            _error_responses(op, write=method != "get")
    needed.update({"responses/InvalidParameter", "responses/NotFound", "responses/ServerError"})
    needed.update(f"responses/{name}" for _, name in _WRITE_ERRORS)
    doc["paths"] = {p: item for p, item in doc["paths"].items() if _METHODS & set(item)}
    _add_components(doc, needed)
    for key in _OVERRIDES:
        section, name = key.split("/")
        if name in doc["components"].get(section, {}):
            doc["components"][section][name] = local_components()[key]
    doc["components"]["parameters"].pop("vendorSpecificParameters", None)
    return doc


def _add_components(doc: dict[str, Any], needed: set[str]) -> None:
    comps = doc.setdefault("components", {})
    pending = set(needed)
    done: set[str] = set()
    while pending:
        key = pending.pop()
        done.add(key)
        section, name = key.split("/")
        body = local_components()[key]
        comps.setdefault(section, {}).setdefault(name, body)
        for ref in _refs(body):
            k = ref.removeprefix("#/components/")
            if k not in done:
                pending.add(k)


def _refs(node: Any) -> list[str]:
    if isinstance(node, list):
        return [r for x in node for r in _refs(x)]
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    return []
