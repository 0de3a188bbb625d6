"""The builder's procedure-guide page ``/guide/`` (HTML shell; the page calls the JSON API).

The page itself is static: ``guide.html`` renders the form from the fixed vocabulary of
``geoservice.guide.models``; ``static/guide.js`` calls ``POST /api/guide``,
``GET /api/parcels`` and the OGC API (map overlays, collection credits) on this server only.

Wiring: the guide room (``geoservice.guide.api.room``) hands ``router`` and the portal link
``PAGE`` to the composition root.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from geoservice.guide.models import ACTIVITIES, STRUCTURES, USES
from geoservice.runtime import PageLink, RuntimeDep
from geoservice.web.basemaps import page_basemaps

router = APIRouter(include_in_schema=False)

PAGE: PageLink = {
    "href": "/guide/",
    "title": "Procedure guide / 手続きガイド",
    "description": "土地と計画から必要な手続きを調べる (parcel, point or polygon → every "
    "procedure's status, reasons, timeline, printable report)",
}

#: Japanese and English labels of the fixed vocabulary (values are the API's).
ACTIVITY_LABELS: dict[str, tuple[str, str]] = {
    "new-building": ("建築（新築）", "New building"),
    "extension": ("増築", "Extension"),
    "demolition": ("解体", "Demolition"),
    "land-development": ("開発行為（区画形質の変更）", "Land development"),
    "earthwork": ("盛土・切土", "Earthwork (cut / fill)"),
    "outdoor-advertisement": ("屋外広告物", "Outdoor advertisement"),
    "tree-felling": ("伐採", "Tree felling"),
    "land-purchase": ("土地の取得（売買）", "Land purchase"),
    "road-occupation": ("道路占用", "Road occupation"),
}
USE_LABELS: dict[str, tuple[str, str]] = {
    "detached-house": ("一戸建て住宅", "Detached house"),
    "apartment-for-sale-or-rent": ("分譲・賃貸住宅", "Apartment for sale or rent"),
    "shop": ("店舗", "Shop"),
    "office": ("事務所", "Office"),
    "welfare-facility": ("社会福祉施設", "Welfare facility"),
    "school": ("学校", "School"),
    "hospital": ("病院", "Hospital"),
    "factory": ("工場", "Factory"),
    "warehouse": ("倉庫", "Warehouse"),
    "solar-power": ("太陽光発電設備", "Solar power plant"),
    "other": ("その他", "Other"),
}
STRUCTURE_LABELS: dict[str, tuple[str, str]] = {
    "wood": ("木造", "Wood"),
    "steel": ("鉄骨造", "Steel"),
    "rc": ("鉄筋コンクリート造", "Reinforced concrete"),
    "other": ("その他", "Other"),
}


def _options(values: tuple[str, ...], labels: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"value": v, "ja": labels.get(v, (v, v))[0], "en": labels.get(v, (v, v))[1]} for v in values
    ]


@router.get("/guide", response_class=RedirectResponse)
async def guide_redirect() -> RedirectResponse:
    """``/guide`` → ``/guide/``."""
    return RedirectResponse("/guide/", status_code=308)


@router.get("/guide/", response_class=HTMLResponse)
async def guide_page(rt: RuntimeDep) -> HTMLResponse:
    """The procedure-guide page: site by 地番 / point / polygon, works form, report."""
    return rt.html.render(
        "guide.html",
        activities=_options(ACTIVITIES, ACTIVITY_LABELS),
        uses=_options(USES, USE_LABELS),
        structures=_options(STRUCTURES, STRUCTURE_LABELS),
        basemaps=page_basemaps(rt.settings),
    )
