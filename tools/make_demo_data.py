#!/usr/bin/env python3
"""Write the project's synthetic demo mirror ``data/demo/`` (deterministic, seeded).

``data/demo`` is laid out like the official-source mirror ``../shared/data`` (same
relative paths as ``source.paths`` in ``layers/*.yml``, same file formats and field
names), so ``geoservice build --mirror data/demo`` reads it with the same loaders.  Every
value is invented: municipalities are simple polygons carrying the real names and codes,
the features are placed and dated by a seeded random generator, and ``MIRROR.yml`` marks
the mirror ``synthetic: true`` so every collection built from it is labelled as demo data.

Running the script twice gives byte-identical files (fixed seed, fixed dates, fixed zip
timestamps, sorted output).  Usage::

    python tools/make_demo_data.py            # writes data/demo/
    python tools/make_demo_data.py --out DIR  # writes elsewhere (tests compare the output)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyproj import Transformer

from geoservice.hazards.demo import DEMO_FLD_PATH, demo_fld_gml

SEED = 20261126
#: The "today" the demo is written for: recency colours (last month / last 3 months)
#: are relative to this day.  Fixed, never ``date.today()``, so the output is stable.
REFERENCE_DAY = dt.date(2026, 11, 26)
LABEL = "Tokyo GeoTwin demo data (synthetic)"
NOTE = "SYNTHETIC demo data for Tokyo GeoTwin - invented values, not an official record"

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PROJECT / "data" / "demo"

# Relative paths: identical to source.paths of the non-bundled layer specs in layers/.
ADMIN = "admin/N03-21_13_210101.json"
BEARS = "bear/tokyo_bear_sightings_2023-2025.geojson"
DEBRIS = "hazard/tokyo_dosekiryu_tokubetsu.json"
LANDSLIDE = "hazard/tokyo_jisuberi.json"
SHELTERS = "evacuation/shelter_point.json"
HACHIOJI = "evacuation/hachioji_hinanjo.csv"
URF_2022 = "plateau/nusamai_tokyo23-ku/533957_urf_6668_op.gml"
URF_2020 = "plateau/unity_TestDataTokyoMini/533925_urf_6668_{}_op.gml"
LSLD = "plateau/unity_TestDataTokyoMini/533925_lsld_6668_op.gml"
CODELISTS = "plateau/codelists"
MOJXML = "mojxml/12103-0400-76.zip"
#: PLATEAU bldg files of layers/buildings.yml: synthetic LOD1 blocks near the real meshes
#: (geoservice.city3d.synthetic), as (path, buildings, centre lon/lat).
BLDG = [
    ("plateau/libplateau_ota/53392642_bldg_6697_op2.gml", 24, (139.7770, 35.5400)),
    ("plateau/unity_TestDataTokyoMini/53392546_bldg_6697_2_op.gml", 9, (139.7122, 35.5416)),
    ("plateau/unity_TestDataTokyoMini/53392547_bldg_6697_2_op.gml", 9, (139.7152, 35.5418)),
    ("plateau/unity_TestDataTokyoMini/53394525_bldg_6697_2_op.gml", 16, (139.6992, 35.6902)),
]

Ring = list[tuple[float, float]]  # (lon, lat)

# --------------------------------------------------------------------------- municipalities

# (code, name, county, box lon0, lat0, lon1, lat1): the demo boundaries are these boxes
# with a few invented bends on the outer edges; neighbours share straight edges exactly,
# so the polygons never overlap.
MUNICIPALITIES: list[tuple[str, str, str | None, tuple[float, float, float, float]]] = [
    ("13111", "大田区", None, (139.665, 35.530, 139.790, 35.605)),
    ("13122", "葛飾区", None, (139.820, 35.720, 139.895, 35.790)),
    ("13201", "八王子市", None, (139.160, 35.580, 139.440, 35.700)),
    ("13205", "青梅市", None, (139.190, 35.760, 139.330, 35.840)),
    ("13228", "あきる野市", None, (139.160, 35.700, 139.300, 35.760)),
    ("13307", "檜原村", "西多摩郡", (139.020, 35.680, 139.160, 35.760)),
    ("13308", "奥多摩町", "西多摩郡", (139.000, 35.760, 139.190, 35.870)),
]
MUNI = {code: (name, county, box) for code, name, county, box in MUNICIPALITIES}


def municipality_ring(rng: random.Random, box: tuple[float, float, float, float]) -> Ring:
    """A box whose edges get two inward/outward bends each (shared edges stay straight)."""
    x0, y0, x1, y1 = box
    shared = _shared_edges(box)
    ring: Ring = []
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    for i, (a, b) in enumerate(zip(corners, corners[1:] + corners[:1], strict=True)):
        ring.append(a)
        if i in shared:
            continue
        for t in (0.33, 0.7):
            px, py = a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
            amp = 0.006
            if a[1] == b[1]:  # horizontal edge: bend north/south
                py += rng.uniform(-amp, amp)
            else:
                px += rng.uniform(-amp, amp)
            ring.append((round(px, 6), round(py, 6)))
    ring.append(ring[0])
    return ring


def _shared_edges(box: tuple[float, float, float, float]) -> set[int]:
    """Indices (0 south, 1 east, 2 north, 3 west) of edges touching another demo box."""
    x0, y0, x1, y1 = box
    edges = set()
    for _, _, _, (a0, b0, a1, b1) in MUNICIPALITIES:
        if (a0, b0, a1, b1) == box:
            continue
        overlap_x = min(x1, a1) > max(x0, a0)
        overlap_y = min(y1, b1) > max(y0, b0)
        if overlap_x and abs(b1 - y0) < 1e-9:
            edges.add(0)
        if overlap_y and abs(a0 - x1) < 1e-9:
            edges.add(1)
        if overlap_x and abs(b0 - y1) < 1e-9:
            edges.add(2)
        if overlap_y and abs(a1 - x0) < 1e-9:
            edges.add(3)
    return edges


def inside(rng: random.Random, code: str, margin: float = 0.012) -> tuple[float, float]:
    """A random point well inside a municipality's box (clear of the bent edges)."""
    _, _, (x0, y0, x1, y1) = MUNI[code]
    return (rng.uniform(x0 + margin, x1 - margin), rng.uniform(y0 + margin, y1 - margin))


def blob(rng: random.Random, cx: float, cy: float, rx: float, ry: float, n: int = 9) -> Ring:
    """An irregular closed ring around (cx, cy), radii in degrees, counter-clockwise."""
    ring = []
    for i in range(n):
        angle = 2 * math.pi * i / n
        k = rng.uniform(0.65, 1.0)
        x, y = cx + rx * k * math.cos(angle), cy + ry * k * math.sin(angle)
        ring.append((round(x, 7), round(y, 7)))
    ring.append(ring[0])
    return ring


# --------------------------------------------------------------------------- helpers


def dump_geojson(collection: dict[str, Any]) -> str:
    """One feature per line, like the official extracts; stable key order."""
    head = {k: v for k, v in collection.items() if k != "features"}
    lines = [json.dumps(f, ensure_ascii=False, separators=(", ", ": "))
             for f in collection["features"]]
    opening = json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n'
    return opening + ",\n".join(lines) + "\n]}\n"


def feature(props: dict[str, Any], geometry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def polygon(ring: Ring) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def wareki(day: dt.date) -> str:
    """A date in the Japanese era calendar, as the Tokyo hazard files write 告示日."""
    if day >= dt.date(2019, 5, 1):
        year = day.year - 2018
        era = "令和"
    else:
        year = day.year - 1988
        era = "平成"
    return f"{era}{'元' if year == 1 else year}年{day.month}月{day.day}日"


def check_digit_code(code5: str) -> str:
    """The 6-digit 地方公共団体コード (5 digits + JIS X 0401 check digit)."""
    total = sum(int(d) * w for d, w in zip(code5, (6, 5, 4, 3, 2), strict=True))
    remainder = total % 11
    check = 0 if remainder == 0 else (11 - remainder) % 10
    return f"{code5}{check}"


def random_day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


# --------------------------------------------------------------------------- admin + bears


def make_admin(rng: random.Random) -> str:
    features = []
    for code, name, county, box in MUNICIPALITIES:
        props = {"N03_001": "東京都", "N03_002": None, "N03_003": county, "N03_004": name,
                 "N03_007": code}
        features.append(feature(props, polygon(municipality_ring(rng, box))))
    return dump_geojson({"type": "FeatureCollection", "name": "N03-21_13_210101_demo",
                         "description": NOTE, "features": features})


BEAR_AREAS = [("13308", 0.42), ("13228", 0.14), ("13205", 0.14), ("13307", 0.16), ("13201", 0.14)]
BEAR_MONTH_WEIGHTS = {4: 5, 5: 10, 6: 15, 7: 12, 8: 9, 9: 10, 10: 14, 11: 6, 12: 1, 3: 1}


def bear_point(rng: random.Random) -> tuple[float, float]:
    codes, weights = zip(*BEAR_AREAS, strict=True)
    code = rng.choices(codes, weights)[0]
    lon, lat = inside(rng, code)
    if code == "13201":  # the western, mountainous part of 八王子 only
        lon = rng.uniform(139.175, 139.27)
    # Quantised to about 30 m like the decoded tile positions of the real source.
    return round(round(lon / 0.0003) * 0.0003, 6), round(round(lat / 0.0003) * 0.0003, 6)


def bear_day(rng: random.Random) -> dt.date:
    while True:
        year = rng.choice((2023, 2024, 2025, 2026))
        months, weights = zip(*BEAR_MONTH_WEIGHTS.items(), strict=True)
        month = rng.choices(months, weights)[0]
        day = dt.date(year, month, rng.randint(1, 28))
        if dt.date(2023, 4, 1) <= day <= REFERENCE_DAY - dt.timedelta(days=92):
            return day


def make_bears(rng: random.Random) -> str:
    days = [bear_day(rng) for _ in range(128)]
    # Recent reports so the map's recency colours show: 14 in the 3 months before the
    # last month, 10 within the last month (relative to REFERENCE_DAY).
    month_ago = REFERENCE_DAY - dt.timedelta(days=30)
    quarter_ago = REFERENCE_DAY - dt.timedelta(days=91)
    days += [random_day(rng, quarter_ago, month_ago - dt.timedelta(days=1)) for _ in range(14)]
    days += [random_day(rng, month_ago, REFERENCE_DAY - dt.timedelta(days=2)) for _ in range(10)]
    days.sort()
    kinds = (("witness", 55), ("trace", 30), ("photographing", 10), ("capture", 5))
    accuracies = (("high", 52), ("middle", 33), ("low", 15))
    features = []
    for number, day in enumerate(days, 1):
        lon, lat = bear_point(rng)
        props = {
            "number": str(number),
            "date": f"{day.year}/{day.month}/{day.day}",
            "accuracy": rng.choices(*zip(*accuracies, strict=True))[0],
            "sightings": rng.choices(*zip(*kinds, strict=True))[0],
        }
        features.append(feature(props, {"type": "Point", "coordinates": [lon, lat]}))
    return dump_geojson({"type": "FeatureCollection",
                         "name": "tokyo_bear_sightings_demo", "description": NOTE,
                         "features": features})


# --------------------------------------------------------------------------- hazard zones

CRS84_MEMBER = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
OFFICE = {"13201": "南多摩西部建設事務所", "13205": "西多摩建設事務所",
          "13228": "西多摩建設事務所", "13307": "西多摩建設事務所", "13308": "西多摩建設事務所"}
#: Invented but plausible place names (町丁) per municipality, for 所在地.
PLACES = {
    "13201": ["上恩方町", "下恩方町", "西寺方町", "川町", "裏高尾町", "南浅川町"],
    "13205": ["成木七丁目", "小曾木五丁目", "沢井二丁目", "御岳山"],
    "13228": ["戸倉", "乙津", "養沢", "山田"],
    "13307": ["数馬", "人里", "南郷", "小岩"],
    "13308": ["日原", "川野", "留浦", "境", "棚沢", "大丹波"],
}
RIVERS = {"13201": "浅川", "13205": "成木川", "13228": "秋川", "13307": "秋川", "13308": "日原川"}
STREAM_NAMES = ["ナラ沢", "クルミ沢", "大久保沢", "カヤト沢", "栃ノ木沢", "石小屋沢",
                "ヌタ沢", "西ノ入沢", "フジ沢", "桂谷"]


def make_debris_flow(rng: random.Random) -> str:
    features = []
    areas = ["13308", "13308", "13308", "13201", "13201", "13201", "13307", "13307",
             "13228", "13205", "13205", "13308"]
    notices = [dt.date(2019, 6, 28), dt.date(2020, 3, 31), dt.date(2021, 2, 26),
               dt.date(2018, 12, 14)]
    for gid, code in enumerate(areas, 1):
        name = MUNI[code][0]
        county = MUNI[code][1] or ""
        number = f"{code[2:]}001-D{gid * 7 + 100:03d}"
        cx, cy = inside(rng, code)
        place = rng.choice(PLACES[code])
        notice = rng.choice(notices)
        props = {
            "gid": gid, "__gid": gid, "genshoname": "土石流", "kubun": "特別警戒区域",
            "keiryunum": number, "keiryuname": f"土・{STREAM_NAMES[gid % len(STREAM_NAMES)]}",
            "suikeiname": "多摩川", "kasenname": RIVERS[code], "prefacture": "東京都",
            "shozaichi": f"東京都{county}{name}{place}", "jimuname": OFFICE[code],
            "chousakika": "東京都建設局河川部", "koujinum": f"第{rng.randint(100, 999)}号",
            "koujidate": wareki(notice), "chikuname": None, "new_city": name,
            "filechosho": f"{number}.pdf", "filetosho": f"{number}.pdf", "id": gid - 1,
            "other": None,
        }
        # A narrow zone along a valley: elongated north-south.
        features.append(feature(props, polygon(blob(rng, cx, cy, 0.0016, 0.0045, 11))))
    return dump_geojson({"type": "FeatureCollection", "name": "d_rzone_demo",
                         "description": NOTE, "crs": CRS84_MEMBER, "features": features})


def make_landslide(rng: random.Random) -> str:
    features = []
    areas = ["13308", "13308", "13308", "13307", "13307", "13205"]
    names = ["地・峰谷", "地・坂本", "地・倉沢", "地・藤原", "地・笹野", "地・上成木"]
    for gid, (code, kasho) in enumerate(zip(areas, names, strict=True), 1):
        name, county, _ = MUNI[code]
        number = f"{code[2:]}001-J{gid * 3:03d}"
        cx, cy = inside(rng, code)
        notice = random_day(rng, dt.date(2007, 3, 1), dt.date(2022, 3, 31))
        props = {
            "gid": gid, "genshoname": "地滑り", "kubun": "警戒区域", "kashonum": number,
            "edanum": None, "kashoname": kasho, "kashokubun": "地すべり危険箇所",
            "prefacture": "東京都",
            "shozaichi": f"東京都{county or ''}{name}{rng.choice(PLACES[code])}",
            "jimuname": OFFICE[code], "chousakika": "東京都建設局河川部",
            "koujinum": f"第{rng.randint(100, 999)}号", "koujidate": wareki(notice),
            "chikuname": None, "new_city": name, "filechosho": f"{number}.pdf",
            "filetosho": f"{number}.pdf", "other": None,
        }
        features.append(feature(props, polygon(blob(rng, cx, cy, 0.004, 0.003, 10))))
    return dump_geojson({"type": "FeatureCollection", "name": "j_yzone_demo",
                         "description": NOTE, "crs": CRS84_MEMBER, "features": features})


# --------------------------------------------------------------------------- shelters

SHELTER_NAMES = {
    "13111": ["大田区立みなと台小学校", "大田区立池上西中学校", "大田区立雪谷東小学校",
              "大田区民センター南館"],
    "13122": ["葛飾区立新金町小学校", "葛飾区立水元北中学校", "葛飾区立柴又みどり小学校"],
    "13201": ["八王子市立高尾台小学校", "八王子市立恩方東中学校", "八王子市元八王子市民センター"],
    "13205": ["青梅市立成木東小学校", "青梅市立第八中学校"],
    "13228": ["あきる野市立五日市南小学校", "あきる野市戸倉地区会館"],
    "13307": ["檜原村立檜原北小学校", "檜原村数馬生活館"],
    "13308": ["奥多摩町立古里東小学校", "奥多摩町日原地区集会所", "奥多摩町体育館"],
}
WARD_PLACES = ["南町", "東一丁目", "西二丁目", "中央三丁目"]
EXTRA = ["", "", "", "オストメイト設備", "車椅子使用者対応トイレ", "自動ドア"]


def make_shelters(rng: random.Random) -> str:
    features = []
    for code, names in SHELTER_NAMES.items():
        name, county, _ = MUNI[code]
        for facility in names:
            lon, lat = inside(rng, code, margin=0.015)
            flag = rng.random
            props = {
                "避難所_施設名称": facility,
                "地方公共団体コード": check_digit_code(code),
                "都道府県": "東京都",
                "指定市区町村名": name,
                "所在地住所": f"{county or ''}{name}{rng.choice(PLACES.get(code, WARD_PLACES))}"
                f"{rng.randint(1, 30)}-{rng.randint(1, 20)}",
                "エレベーター有/避難スペースが１階": "○" if flag() < 0.7 else "",
                "スロープ等": "○" if flag() < 0.4 else "",
                "点字ブロック": "○" if flag() < 0.3 else "",
                "車椅子使用者対応トイレ": "○" if flag() < 0.45 else "",
                "その他": rng.choice(EXTRA),
            }
            features.append(feature(props, {"type": "Point",
                                            "coordinates": [round(lon, 7), round(lat, 8)]}))
    return dump_geojson({"type": "FeatureCollection", "name": "130001_evacuation_center_demo",
                         "description": NOTE, "features": features})


HACHIOJI_COLUMNS = ["ID", "名称", "住所", "緯度", "経度", "避難場所", "避難所", "洪水",
                    "崖崩れ、土石流及び地滑り", "地震", "内水氾濫", "備考"]
HACHIOJI_SITES = [
    ("浅川中流河川敷（デモ）", "元本郷町4-120", "広域避難場所", (True, False)),
    ("八王子市民の森公園", "台町5-8", "広域避難場所", (True, False)),
    ("高尾台小学校", "高尾台町2-11-1", "", (True, True)),
    ("恩方東中学校", "下恩方町1150", "", (True, True)),
    ("元八王子市民センター", "元八王子町3-2210", "", (False, True)),
    ("みなみ野西小学校", "みなみ野6-3-1", "", (True, True)),
    ("片倉つどいの森公園", "片倉町2200", "", (True, False)),
    ("川口北小学校", "川口町1980-2", "", (True, True)),
    ("横山第三中学校", "横山町18-4", "", (True, True)),
    ("由木西市民センター", "松木40-1", "", (False, True)),
    ("長房東小学校", "長房町412", "", (True, True)),
    ("上川口地区会館", "上川町3300", "", (False, True)),
    ("高尾山麓多目的広場\n（旧グラウンド）", "裏高尾町450", "", (True, False)),
    ("石川西中学校", "石川町2450-1", "", (True, True)),
    ("松が谷第二小学校", "松が谷11", "", (True, True)),
    ("陣馬街道沿い防災広場", "上恩方町2010", "", (True, False)),
]


def make_hachioji(rng: random.Random) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HACHIOJI_COLUMNS)
    for n, (name, address, note, (site, shelter)) in enumerate(HACHIOJI_SITES, 1):
        lon, lat = inside(rng, "13201", margin=0.02)
        mountain = lon < 139.25
        flags = [rng.random() < 0.35, mountain and rng.random() < 0.8, True,
                 rng.random() < 0.3]
        if note:  # wide-area evacuation sites: earthquake (fire spread) only
            flags = [False, False, True, False]
        writer.writerow([f"13201{n:05d}", name, f"東京都八王子市{address}", f"{lat:.6f}",
                         f"{lon:.6f}", site, shelter, *flags, note])
    return out.getvalue()


# --------------------------------------------------------------------------- PLATEAU

NS_COMMON = (
    'xmlns:core="http://www.opengis.net/citygml/2.0" '
    'xmlns:gml="http://www.opengis.net/gml" '
    'xmlns:gen="http://www.opengis.net/citygml/generics/2.0" '
    'xmlns:bldg="http://www.opengis.net/citygml/building/2.0" '
    'xmlns:luse="http://www.opengis.net/citygml/landuse/2.0" '
    'xmlns:tran="http://www.opengis.net/citygml/transportation/2.0" '
    'xmlns:dem="http://www.opengis.net/citygml/relief/2.0" '
    'xmlns:app="http://www.opengis.net/citygml/appearance/2.0" '
    'xmlns:grp="http://www.opengis.net/citygml/cityobjectgroup/2.0" '
    'xmlns:xAL="urn:oasis:names:tc:ciq:xsdschema:xAL:2.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
IUR14 = "http://www.kantei.go.jp/jp/singi/tiiki/toshisaisei/itoshisaisei/iur"
SCHEMA_CITYGML = (
    "http://www.opengis.net/citygml/2.0 http://schemas.opengis.net/citygml/2.0/cityGMLBase.xsd "
    "http://www.opengis.net/citygml/generics/2.0 "
    "http://schemas.opengis.net/citygml/generics/2.0/generics.xsd "
    "http://www.opengis.net/gml http://schemas.opengis.net/gml/3.1.1/base/gml.xsd"
)
CL = "../../codelists/"
DZT = f'codeSpace="{CL}Common_districtsAndZonesType.xml"'
LPA = f'codeSpace="{CL}Common_localPublicAuthorities.xml"'


def grid(rng: random.Random, origin: tuple[float, float], size: tuple[float, float],
         rows: int, cols: int) -> list[list[tuple[float, float]]]:
    """Jittered grid corners (lon, lat); neighbouring cells share corners exactly."""
    (x0, y0), (w, h) = origin, size
    points = []
    for r in range(rows + 1):
        row = []
        for c in range(cols + 1):
            jx = 0 if c in (0, cols) else rng.uniform(-0.15, 0.15) * w
            jy = 0 if r in (0, rows) else rng.uniform(-0.15, 0.15) * h
            row.append((x0 + c * w + jx, y0 + r * h + jy))
        points.append(row)
    return points


def span(points: list[list[tuple[float, float]]], r: int, c0: int, c1: int) -> Ring:
    """Ring of the cells c0..c1-1 in grid row r (counter-clockwise, closed)."""
    bottom = points[r][c0:c1 + 1]
    top = list(reversed(points[r + 1][c0:c1 + 1]))
    ring = bottom + top
    return [*ring, ring[0]]


def pos_list(ring: Ring) -> str:
    """PLATEAU order: latitude longitude height (JGD2011 axis order), height 0."""
    return " ".join(f"{lat:.12f} {lon:.12f} 0" for lon, lat in ring)


def surface(ring: Ring, prop: str, indent: str = "\t\t\t") -> str:
    i = indent
    return (
        f"{i}<{prop}>\n{i}\t<gml:MultiSurface>\n{i}\t\t<gml:surfaceMember>\n"
        f"{i}\t\t\t<gml:Polygon>\n{i}\t\t\t\t<gml:exterior>\n{i}\t\t\t\t\t<gml:LinearRing>\n"
        f"{i}\t\t\t\t\t\t<gml:posList>{pos_list(ring)}</gml:posList>\n"
        f"{i}\t\t\t\t\t</gml:LinearRing>\n{i}\t\t\t\t</gml:exterior>\n{i}\t\t\t</gml:Polygon>\n"
        f"{i}\t\t</gml:surfaceMember>\n{i}\t</gml:MultiSurface>\n{i}</{prop}>\n"
    )


def envelope(rings: Sequence[Ring], srs: str) -> str:
    lons = [p[0] for r in rings for p in r]
    lats = [p[1] for r in rings for p in r]
    return (
        f'\t<gml:boundedBy>\n\t\t<gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/{srs}"'
        f' srsDimension="3">\n'
        f"\t\t\t<gml:lowerCorner>{min(lats):.12f} {min(lons):.12f} 0</gml:lowerCorner>\n"
        f"\t\t\t<gml:upperCorner>{max(lats):.12f} {max(lons):.12f} 0</gml:upperCorner>\n"
        f"\t\t</gml:Envelope>\n\t</gml:boundedBy>\n"
    )


def gml_id(rng: random.Random, prefix: str) -> str:
    hexes = f"{rng.getrandbits(128):032x}"
    return f"{prefix}_{hexes[:8]}-{hexes[8:12]}-4{hexes[13:16]}-a{hexes[17:20]}-{hexes[20:]}"


def city_model(header: str, members: list[str], rings: list[Ring], srs: str, bom: bool) -> str:
    body = "".join(f"\t<core:cityObjectMember>\n{m}\t</core:cityObjectMember>\n" for m in members)
    return (("\ufeff" if bom else "") + '<?xml version="1.0" encoding="UTF-8"?>\n'
            + header + "\n" + envelope(rings, srs) + body + "</core:CityModel>\n")


#: 用途地域 code -> (floor area ratio, building coverage ratio) used in the demo.
USE = {1: (1.0, 0.5), 2: (1.5, 0.6), 3: (2.0, 0.6), 5: (3.0, 0.6), 7: (3.0, 0.6),
       9: (3.0, 0.8), 10: (5.0, 0.8), 11: (2.0, 0.6)}


def make_urf_2022(rng: random.Random) -> str:
    """i-UR 2.0 (2022+) encoding: UseDistrict / HeightControlDistrict / FirePreventionDistrict."""
    # 葛飾区 demo block: 2 rows x 4 columns of zones near the eastern ward border.
    points = grid(rng, (139.852, 35.752), (0.0085, 0.0095), 2, 4)
    members: list[str] = []
    rings: list[Ring] = []
    head = (f'<core:CityModel {NS_COMMON} xmlns:urf="https://www.geospatial.jp/iur/urf/2.0" '
            f'xsi:schemaLocation="https://www.geospatial.jp/iur/urf/2.0 '
            f'../../schemas/iur/urf/2.0/urbanFunction.xsd {SCHEMA_CITYGML}">')

    def member(kind: str, code: int, ring: Ring, extra: str, custodian: str, notice: str,
               valid: str) -> str:
        rings.append(ring)
        return (
            f'\t\t<urf:{kind} gml:id="{gml_id(rng, "urf")}">\n'
            f"\t\t\t<urf:function {DZT}>{code}</urf:function>\n"
            f"\t\t\t<urf:validFrom>{valid}</urf:validFrom>\n"
            f'\t\t\t<urf:validFromType codeSpace="{CL}Common_validType.xml">'
            f'{"9" if valid == "0001-01-01" else "1"}</urf:validFromType>\n'
            f"\t\t\t<urf:custodian>{custodian}</urf:custodian>\n"
            f"\t\t\t<urf:notificationNumber>{notice}</urf:notificationNumber>\n"
            f"\t\t\t<urf:prefecture {LPA}>13</urf:prefecture>\n"
            f"\t\t\t<urf:city {LPA}>13122</urf:city>\n"
            + surface(ring, "urf:lod1MultiSurface") + extra + f"\t\t</urf:{kind}>\n"
        )

    uses = [[1, 3, 5, 9], [2, 5, 10, 11]]
    for r in range(2):
        for c in range(4):
            code = uses[r][c]
            far, bcr = USE[code]
            extra = (f"\t\t\t<urf:buildingCoverageRate>{bcr:g}</urf:buildingCoverageRate>\n"
                     f"\t\t\t<urf:floorAreaRate>{far:g}</urf:floorAreaRate>\n")
            members.append(member("UseDistrict", code, span(points, r, c, c + 1), extra, "東京都",
                                  f"葛飾区告示第{rng.randint(10, 299)}号", "2004-06-24"))
    def limit(kind: str, metres: int) -> str:
        return f'\t\t\t<urf:{kind}BuildingHeight uom="m">{metres}</urf:{kind}BuildingHeight>\n'

    heights = [(0, 0, 2, limit("maximum", 17)), (1, 0, 2, limit("maximum", 20)),
               (0, 2, 4, limit("maximum", 30) + limit("minimum", 7))]
    for r, c0, c1, extra in heights:
        members.append(member("HeightControlDistrict", 18, span(points, r, c0, c1), extra,
                              "不明", "不明", "0001-01-01"))
    members.append(member("FirePreventionDistrict", 24, span(points, 0, 3, 4), "", "東京都",
                          "不明", "0001-01-01"))
    members.append(member("FirePreventionDistrict", 25, span(points, 0, 0, 3), "", "東京都",
                          "不明", "0001-01-01"))
    members.append(member("FirePreventionDistrict", 25, span(points, 1, 0, 4), "", "東京都",
                          "不明", "0001-01-01"))
    return city_model(head, members, rings, "6697", bom=False)


def make_urf_2020(rng: random.Random) -> dict[str, str]:
    """i-UR 1.4 (2020) encoding: urf:DistrictsAndZones with urf:class, one file per kind."""
    # 大田区 demo block: 2 rows x 3 columns near 池上 / 久が原.
    points = grid(rng, (139.688, 35.561), (0.011, 0.008), 2, 3)
    head = (f'<core:CityModel {NS_COMMON} xmlns:urf="{IUR14}/urf/1.4" xmlns:uro="{IUR14}/uro/1.4" '
            f'xsi:schemaLocation="{IUR14}/urf/1.4 {IUR14}/schemas/urf/1.4/urbanFunction.xsd '
            f'{SCHEMA_CITYGML}">')
    layouts = {
        "yoto": [(3, 0, 0, 1), (1, 0, 1, 2), (9, 0, 2, 3), (5, 1, 0, 1), (7, 1, 1, 2),
                 (10, 1, 2, 3)],
        "boka": [(24, 0, 2, 3), (25, 0, 0, 2), (25, 1, 0, 3)],
        "kodo": [(18, 0, 0, 2), (18, 0, 2, 3), (18, 1, 0, 3)],
    }
    out = {}
    for kind, zones in layouts.items():
        members, rings = [], []
        for code, r, c0, c1 in zones:
            ring = span(points, r, c0, c1)
            rings.append(ring)
            members.append(
                f'\t\t<urf:DistrictsAndZones gml:id="{gml_id(rng, "urf")}">\n'
                f"\t\t\t<urf:class {DZT}>{code}</urf:class>\n"
                f'\t\t\t<urf:urbanPlanType codeSpace="{CL}Common_urbanPlanType.xml">21'
                "</urf:urbanPlanType>\n"
                f'\t\t\t<urf:prefecture codeSpace="{CL}Common_prefecture.xml">13</urf:prefecture>\n'
                f"\t\t\t<urf:city {LPA}>13111</urf:city>\n"
                + surface(ring, "urf:lod0MultiSurface") + "\t\t</urf:DistrictsAndZones>\n"
            )
        out[URF_2020.format(kind)] = city_model(head, members, rings, "6668", bom=False)
    return out


def make_lsld(rng: random.Random) -> str:
    """2020 lsld encoding: gen:GenericCityObject with a 土砂災害警戒区域 attribute set."""
    head = (f'<core:CityModel {NS_COMMON} xmlns:uro="{IUR14}/uro/1.4" '
            f'xsi:schemaLocation="{SCHEMA_CITYGML}">')
    places = ["大田区池上1", "大田区池上3", "大田区久が原2", "大田区南雪谷5", "大田区田園調布1",
              "大田区山王3", "大田区中央6", "大田区上池台4"]
    members, rings = [], []
    for n, place in enumerate(places, 1):
        cx = rng.uniform(139.685, 139.735)
        cy = rng.uniform(35.560, 35.585)
        # Steep-slope (急傾斜地) zones: thin bands along a slope.
        ring = blob(rng, cx, cy, 0.0009, 0.00035, 8)
        rings.append(ring)
        special = n % 3 == 0
        attrs = [("stringAttribute", "区域区分", "2" if special else "1"),
                 ("stringAttribute", "現象の種類", "1"),
                 ("stringAttribute", "都道府県コード", "13"),
                 ("stringAttribute", "区域番号", f"111001-K{n * 4 + 20:03d}"),
                 ("stringAttribute", "区域名", "-"),
                 ("stringAttribute", "所在地", place),
                 ("dateAttribute", "告示日", random_day(rng, dt.date(2016, 1, 1),
                                                     dt.date(2019, 12, 31)).isoformat()),
                 ("stringAttribute", "特別警戒未指定フラグ", "0")]
        body = "".join(f'\t\t\t\t<gen:{t} name="{k}">\n\t\t\t\t\t<gen:value>{v}</gen:value>\n'
                       f"\t\t\t\t</gen:{t}>\n" for t, k, v in attrs)
        members.append(
            f'\t\t<gen:GenericCityObject gml:id="{gml_id(rng, "lsid")}">\n'
            f'\t\t\t<gml:name codeSpace="{CL}genericCityObject_name.xml">1</gml:name>\n'
            f'\t\t\t<gen:genericAttributeSet name="土砂災害警戒区域">\n{body}'
            f"\t\t\t</gen:genericAttributeSet>\n"
            + surface(ring, "gen:lod0Geometry") + "\t\t</gen:GenericCityObject>\n"
        )
    return city_model(head, members, rings, "6668", bom=True)


#: Minimal PLATEAU code lists: only the codes the demo files use.
DISTRICTS = {1: "第1種低層住居専用地域", 2: "第2種低層住居専用地域", 3: "第1種中高層住居専用地域",
             5: "第1種住居地域", 7: "準住居地域", 9: "近隣商業地域", 10: "商業地域",
             11: "準工業地域", 18: "高度地区", 24: "防火地域", 25: "準防火地域"}
AUTHORITIES = {13: "東京都", 13111: "東京都大田区", 13122: "東京都葛飾区"}


def codelist(name: str, entries: dict[int, str]) -> str:
    body = "".join(
        f'\t<gml:dictionaryEntry>\n\t\t<gml:Definition gml:id="id{i}">\n'
        f"\t\t\t<gml:description>{label}</gml:description>\n\t\t\t<gml:name>{code}</gml:name>\n"
        f"\t\t</gml:Definition>\n\t</gml:dictionaryEntry>\n"
        for i, (code, label) in enumerate(entries.items(), 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gml:Dictionary xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:gml="http://www.opengis.net/gml" xsi:schemaLocation="http://www.opengis.net/gml '
        'http://schemas.opengis.net/gml/3.1.1/profiles/SimpleDictionary/1.0.0/'
        f'gmlSimpleDictionaryProfile.xsd" gml:id="cl_demo_{name}">\n'
        f"\t<!-- Tokyo GeoTwin demo: minimal list with only the codes the demo files use -->\n"
        f"\t<gml:name>{name}</gml:name>\n{body}</gml:Dictionary>\n"
    )


# --------------------------------------------------------------------------- 地図XML

def fude(n: int, chiban: str, surface_id: str | None) -> str:
    """One 筆 (parcel) record of 主題属性; a 地区外 pointer has no 形状."""
    t = "\t"
    fields = [("大字コード", "021"), ("丁目コード", "000"), ("小字コード", "0000"),
              ("予備コード", "00"), ("大字名", "山王町"), ("地番", chiban)]
    body = "".join(f"{t*3}<{k}>{v}</{k}>\n" for k, v in fields)
    if surface_id is not None:
        body += f'{t*3}<形状 idref="{surface_id}"/>\n'
    body += f"{t*3}<精度区分>甲二</精度区分>\n{t*3}<座標値種別>測量成果</座標値種別>\n"
    return f'{t*2}<筆 id="H{n:09d}">\n{body}{t*2}</筆>\n'


#: 公共座標9系 (JGD2011 plane rectangular IX); 地図XML writes X = northing, Y = easting.
TO_PLANE = Transformer.from_crs("EPSG:4326", "EPSG:6677", always_xy=True)


def make_mojxml(rng: random.Random) -> bytes:
    """One georeferenced 地図XML sheet: 21 筆 on two blocks (one 地区外 pointer)."""
    easting, northing = TO_PLANE.transform(140.1085, 35.6565)  # 千葉市稲毛区 (demo sheet)
    x0, y0 = round(northing, -1), round(easting, -1)
    # Two blocks of 2 x 5 lots (about 15 m x 22 m) separated by a 6 m road.
    points: dict[tuple[int, int], tuple[float, float]] = {}
    rows_x = [0.0, 22.0, 44.0, 50.0, 72.0, 94.0]  # northing offsets of lot lines
    for i, dx in enumerate(rows_x):
        for j in range(6):
            jitter = (rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)) if 0 < j < 5 else (0.0, 0.0)
            points[(i, j)] = (x0 + dx + jitter[0], y0 + j * 15.0 + jitter[1])
    pid = {key: f"P{n:09d}" for n, key in enumerate(sorted(points), 1)}
    lots = [(i, j) for i in (0, 1, 3, 4) for j in range(5)]
    curves: list[tuple[str, str, str]] = []  # (curve id, start point id, end point id)
    surfaces: list[tuple[str, list[str]]] = []
    for n, (i, j) in enumerate(lots, 1):
        corners = [(i, j), (i, j + 1), (i + 1, j + 1), (i + 1, j)]
        ids = []
        for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
            cid = f"C{len(curves) + 1:09d}"
            curves.append((cid, pid[a], pid[b]))
            ids.append(cid)
        surfaces.append((f"F{n:09d}", ids))
    # A 21st 筆 that points at another sheet (地区外): the reader skips it.
    outside = len(surfaces) + 1

    t = "\t"
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n'
             '<地図 xmlns="http://www.moj.go.jp/MINJI/tizuxml" '
             'xmlns:zmn="http://www.moj.go.jp/MINJI/tizuzumen" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             'xsi:schemaLocation="http://www.moj.go.jp/MINJI/tizuxml tizuxml.xsd">\n',
             f"{t}<version>ver1.0</version>\n{t}<地図名>デモ-稲毛-1</地図名>\n"
             f"{t}<市区町村コード>12103</市区町村コード>\n{t}<市区町村名>千葉市稲毛区</市区町村名>\n"
             f"{t}<座標系>公共座標9系</座標系>\n{t}<測地系判別>測量</測地系判別>\n{t}<空間属性>\n"]
    for key in sorted(points):
        x, y = points[key]
        parts.append(
            f'{t*2}<zmn:GM_Point id="{pid[key]}">\n{t*3}<zmn:GM_Point.position>\n'
            f"{t*4}<zmn:DirectPosition>\n{t*5}<zmn:X>{x:.3f}</zmn:X>\n{t*5}<zmn:Y>{y:.3f}</zmn:Y>\n"
            f"{t*4}</zmn:DirectPosition>\n{t*3}</zmn:GM_Point.position>\n{t*2}</zmn:GM_Point>\n")
    for cid, a, b in curves:
        cols = "".join(
            f"{t*6}<zmn:GM_PointArray.column>\n{t*7}<zmn:GM_Position.indirect>\n"
            f'{t*8}<zmn:GM_PointRef.point idref="{p}"/>\n{t*7}</zmn:GM_Position.indirect>\n'
            f"{t*6}</zmn:GM_PointArray.column>\n" for p in (a, b))
        parts.append(
            f'{t*2}<zmn:GM_Curve id="{cid}">\n'
            f"{t*3}<zmn:GM_OrientablePrimitive.orientation>+</zmn:GM_OrientablePrimitive.orientation>\n"
            f'{t*3}<zmn:GM_OrientablePrimitive.primitive idref="{cid}"/>\n'
            f"{t*3}<zmn:GM_Curve.segment>\n{t*4}<zmn:GM_LineString>\n{t*5}<zmn:GM_LineString.controlPoint>\n"
            f"{cols}{t*5}</zmn:GM_LineString.controlPoint>\n{t*4}</zmn:GM_LineString>\n"
            f"{t*3}</zmn:GM_Curve.segment>\n{t*2}</zmn:GM_Curve>\n")
    for sid, ids in surfaces:
        gens = "".join(f'{t*9}<zmn:GM_CompositeCurve.generator idref="{c}"/>\n' for c in ids)
        parts.append(
            f'{t*2}<zmn:GM_Surface id="{sid}">\n{t*3}<zmn:GM_Surface.patch>\n'
            f"{t*4}<zmn:GM_Polygon>\n"
            f"{t*5}<zmn:GM_Polygon.boundary>\n{t*6}<zmn:GM_SurfaceBoundary>\n"
            f"{t*7}<zmn:GM_SurfaceBoundary.exterior>\n{t*8}<zmn:GM_Ring>\n{gens}{t*8}</zmn:GM_Ring>\n"
            f"{t*7}</zmn:GM_SurfaceBoundary.exterior>\n{t*6}</zmn:GM_SurfaceBoundary>\n"
            f"{t*5}</zmn:GM_Polygon.boundary>\n{t*4}</zmn:GM_Polygon>\n{t*3}</zmn:GM_Surface.patch>\n"
            f"{t*2}</zmn:GM_Surface>\n")
    parts.append(f"{t}</空間属性>\n{t}<主題属性>\n")
    for n, key in enumerate(sorted(points), 1):
        parts.append(f"{t*2}<筆界点>\n{t*3}<点番名>D{n:04d}</点番名>\n"
                     f'{t*3}<形状 idref="{pid[key]}"/>\n{t*2}</筆界点>\n')
    for cid, _, _ in curves:
        parts.append(f'{t*2}<筆界線>\n{t*3}<形状 idref="{cid}"/>\n{t*3}<線種別>筆界線</線種別>\n'
                     f"{t*2}</筆界線>\n")
    block_base = {0: 310, 1: 310, 3: 324, 4: 324}
    for n, ((i, j), (sid, _)) in enumerate(zip(lots, surfaces, strict=True), 1):
        base = block_base[i] + (j if i in (0, 3) else 5 + j)
        chiban = f"{base}-{rng.randint(1, 4)}" if rng.random() < 0.5 else str(base)
        parts.append(fude(n, chiban, sid))
    parts.append(fude(outside, "地区外", None))
    parts.append(f"{t}</主題属性>\n")
    xs = [p[0] for p in points.values()]
    ys = [p[1] for p in points.values()]
    lo_x, hi_x = min(xs) // 25 * 25, (max(xs) // 25 + 1) * 25
    lo_y, hi_y = min(ys) // 25 * 25, (max(ys) // 25 + 1) * 25
    corners = "".join(f"{t*2}<{name}>\n{t*3}<zmn:X>{x:.3f}</zmn:X>\n{t*3}<zmn:Y>{y:.3f}</zmn:Y>\n"
                      f"{t*2}</{name}>\n"
                      for name, x, y in (("左下座標", lo_x, lo_y), ("左上座標", hi_x, lo_y),
                                         ("右下座標", lo_x, hi_y), ("右上座標", hi_x, hi_y)))
    refs = "".join(f'{t*2}<筆参照 idref="H{n:09d}"/>\n' for n in range(1, outside + 1))
    parts.append(
        f"{t}<図郭>\n{t*2}<地図番号>DEMO-1</地図番号>\n{t*2}<縮尺分母>500</縮尺分母>\n"
        f"{t*2}<方位不明フラグ>false</方位不明フラグ>\n{corners}"
        f"{t*2}<地図種類>法務局作成地図</地図種類>\n{t*2}<地図分類>法第14条1項地図</地図分類>\n"
        f"{t*2}<地図材質>電磁的記録媒体</地図材質>\n"
        f"{t*2}<地図作成年月日>\n{t*3}<年>2024</年>\n{t*3}<月>6</月>\n{t*3}<日>3</日>\n{t*2}</地図作成年月日>\n"
        f"{t*2}<備付地図年月日>\n{t*3}<年>2024</年>\n{t*3}<月>9</月>\n{t*3}<日>20</日>\n{t*2}</備付地図年月日>\n"
        f"{refs}{t}</図郭>\n</地図>\n")
    xml = "".join(parts).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(Path(MOJXML).with_suffix(".xml").name,
                               date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, xml)
    return buffer.getvalue()


def make_buildings() -> dict[str, str]:
    """The buildings layer's CityGML files (SYNTHETIC, labelled in every building)."""
    from geoservice.city3d.synthetic import synthetic_citygml

    return {rel: synthetic_citygml(n, seed=SEED + i, centre=centre)
            for i, (rel, n, centre) in enumerate(BLDG)}


# --------------------------------------------------------------------------- manifest

MIRROR_YML = f"""\
# Tokyo GeoTwin demo mirror: written by tools/make_demo_data.py (do not edit by hand).
synthetic: true
label: "{LABEL}"
description: >-
  Small invented datasets laid out like the official-source mirror (../shared/data):
  the same paths, formats and field names as the Tokyo open-data, PLATEAU and 法務省
  地図XML sources, so the same loaders read them. Positions, names, dates and codes are
  synthetic (municipality names and codes are real, their boundaries are simple shapes).
  Not for any real-world decision. Reference day for recency: {REFERENCE_DAY.isoformat()}.
"""

README = """\
# Tokyo GeoTwin demo data (synthetic)

This directory is the project's own demo mirror: small **synthetic** source files laid
out and formatted exactly like the official sources (Tokyo open-data GeoJSON/CSV, PLATEAU
CityGML with minimal code lists, a 法務省 地図XML zip), so `geoservice build --mirror
data/demo` (`make run`) works offline without `../shared`. All positions, names, dates and
codes are invented (only municipality names and codes are real, on simplified shapes), and
`MIRROR.yml` marks every collection built from here as synthetic. Do not edit the files by
hand: regenerate them deterministically with `python tools/make_demo_data.py`.
"""


def generate() -> dict[str, str | bytes]:
    """Every demo file as ``{relative path: content}``; each generator has its own seed."""

    def rng(name: str) -> random.Random:
        return random.Random(f"{SEED}:{name}")

    files: dict[str, str | bytes] = {
        "MIRROR.yml": MIRROR_YML,
        "README.md": README,
        ADMIN: make_admin(rng("admin")),
        BEARS: make_bears(rng("bears")),
        DEBRIS: make_debris_flow(rng("debris")),
        LANDSLIDE: make_landslide(rng("landslide")),
        SHELTERS: make_shelters(rng("shelters")),
        HACHIOJI: make_hachioji(rng("hachioji")),
        URF_2022: make_urf_2022(rng("urf2022")),
        **make_urf_2020(rng("urf2020")),
        LSLD: make_lsld(rng("lsld")),
        f"{CODELISTS}/Common_districtsAndZonesType.xml":
            codelist("Common_districtsAndZonesType", DISTRICTS),
        f"{CODELISTS}/Common_localPublicAuthorities.xml":
            codelist("Common_localPublicAuthoritiesType", AUTHORITIES),
        MOJXML: make_mojxml(rng("mojxml")),
        DEMO_FLD_PATH: demo_fld_gml(),
        **make_buildings(),
    }
    return files


def write(out: Path) -> list[Path]:
    """Write the demo files under ``out`` (existing files are overwritten)."""
    written = []
    for rel, content in sorted(generate().items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(f"{path.stat().st_size:8d}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
