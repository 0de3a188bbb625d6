"""The documented API catalogue (``apis.yml``): zoom ranges and parameters per API id.

Layer specs, the client and the contract server in the tests all check requests against
this one file, so a zoom or parameter the manual does not allow is refused before any
request is made (reason ``zoom-out-of-range`` / ``bad-request``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from geoservice.reinfolib.errors import ReinfolibError

APIS_FILE = Path(__file__).with_name("apis.yml")


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """One documented tile API."""

    id: str
    title: str
    zoom_min: int
    zoom_max: int
    geometry: str
    required: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()

    def check_zoom(self, z: int) -> None:
        """Raise ``zoom-out-of-range`` unless ``z`` is within the documented range."""
        if not self.zoom_min <= z <= self.zoom_max:
            raise ReinfolibError(
                "zoom-out-of-range",
                f"{self.id} ({self.title}) is served at zoom {self.zoom_min}–{self.zoom_max}; "
                f"zoom {z} is outside that range",
                api=self.id,
            )

    def check_params(self, params: dict[str, Any]) -> None:
        """Raise ``bad-request`` for a missing required or an undocumented parameter."""
        missing = [p for p in self.required if p not in params]
        unknown = sorted(set(params) - set(self.required) - set(self.allowed))
        if missing or unknown:
            parts = [f"missing {missing}" if missing else "",
                     f"unknown {unknown}" if unknown else ""]
            raise ReinfolibError(
                "bad-request",
                f"{self.id}: parameters {' and '.join(p for p in parts if p)}; required "
                f"{list(self.required)}, optional {list(self.allowed)}",
                api=self.id,
            )


@lru_cache(maxsize=1)
def apis() -> dict[str, ApiSpec]:
    """Every documented API, by id."""
    raw: dict[str, dict[str, Any]] = yaml.safe_load(APIS_FILE.read_text(encoding="utf-8"))
    return {
        api_id: ApiSpec(
            id=api_id,
            title=str(v["title"]),
            zoom_min=int(v["zoom"][0]),
            zoom_max=int(v["zoom"][1]),
            geometry=str(v.get("geometry", "polygon")),
            required=tuple(v.get("required", ())),
            allowed=tuple(v.get("allowed", ())),
        )
        for api_id, v in raw.items()
    }


def api(api_id: str) -> ApiSpec:
    """The documented API ``api_id`` (``not-found`` if the manual does not list it)."""
    spec = apis().get(api_id)
    if spec is None:
        raise ReinfolibError(
            "not-found", f"{api_id!r} is not a documented tile API; known: {sorted(apis())}",
            api=api_id,
        )
    return spec
