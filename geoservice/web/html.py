"""HTML rendering with Jinja2 templates (autoescaped: data is always shown as text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from geoservice.catalogue import LayerSpec

TEMPLATES = Path(__file__).with_name("templates")


class HtmlRenderer:
    """Renders the service's HTML pages; built once per app."""

    def __init__(self, title: str) -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"])
        )
        self.title = title

    def render(self, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        """Render a template to a response."""
        html = self.env.get_template(template).render(site_title=self.title, **ctx)
        return HTMLResponse(html, status_code=status)

    def items(self, spec: LayerSpec, doc: dict[str, Any], synthetic: bool) -> HTMLResponse:
        """A page of features as a table."""
        cols = [p.name for p in spec.properties]
        return self.render(
            "items.html", spec=spec, doc=doc, cols=cols, synthetic=synthetic or spec.synthetic
        )

    def item(self, spec: LayerSpec, doc: dict[str, Any], synthetic: bool) -> HTMLResponse:
        """One feature's properties."""
        return self.render("item.html", spec=spec, doc=doc, synthetic=synthetic or spec.synthetic)
