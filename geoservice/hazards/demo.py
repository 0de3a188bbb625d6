"""A SYNTHETIC PLATEAU fld file for the demo mirror (``data/demo``), deterministic.

``tools/make_demo_data.py`` puts ``demo_fld_gml()`` at :data:`DEMO_FLD_PATH` (the path of
``layers/flood-inundation.yml``), so ``geoservice build --mirror data/demo`` builds the
flood-inundation layer offline.  Like the real extract it lies in 3次メッシュ 52385721
(outside Tokyo: the layer's declared coverage), but its four invented WaterBody squares
carry ``uro:rank`` codes 1-4 as well as ``uro:rankOrg``, so the demo exercises the rank
decoding that the real extract (rankOrg only) cannot.
"""

from __future__ import annotations

DEMO_FLD_PATH = "plateau/other-cities/52385721_fld_6697_l1_op.gml"

_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!-- SYNTHETIC demo data for Tokyo GeoTwin - invented polygons and depth ranks in the PLATEAU
     fld format; not an official flood inundation map. -->
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" \
xmlns:gml="http://www.opengis.net/gml" xmlns:wtr="http://www.opengis.net/citygml/waterbody/2.0" \
xmlns:uro="https://www.geospatial.jp/iur/uro/2.0">
\t<gml:boundedBy>
\t\t<gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6697" srsDimension="3">
\t\t\t<gml:lowerCorner>35.1010 138.8880 0</gml:lowerCorner>
\t\t\t<gml:upperCorner>35.1070 138.8990 0</gml:upperCorner>
\t\t</gml:Envelope>
\t</gml:boundedBy>
"""
_CL = "../../../../codelists/"


def _square(lat0: float, lon0: float, size: float) -> list[str]:
    """Two triangles (lat lon h), as PLATEAU triangulates its fld surfaces."""
    a = (lat0, lon0)
    b = (lat0, lon0 + size)
    c = (lat0 + size, lon0 + size)
    d = (lat0 + size, lon0)

    def ring(*pts: tuple[float, float]) -> str:
        closed = [*pts, pts[0]]
        return " ".join(f"{p[0]:.6f} {p[1]:.6f} 0" for p in closed)

    return [ring(a, b, c), ring(a, c, d)]


def demo_fld_gml() -> str:
    """The demo fld file as text (same bytes every time)."""
    parts = [_HEADER]
    squares = [(35.1010, 138.8880, "1", "1"), (35.1030, 138.8910, "2", "2"),
               (35.1010, 138.8950, "3", "4"), (35.1040, 138.8960, "4", "6")]
    for n, (lat, lon, rank, org) in enumerate(squares, start=1):
        members = "".join(
            "\t\t\t\t\t<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing>"
            f"<gml:posList>{tri}</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
            "</gml:surfaceMember>\n"
            for tri in _square(lat, lon, 0.0015)
        )
        parts.append(
            "\t<core:cityObjectMember>\n"
            f'\t\t<wtr:WaterBody gml:id="fld_demo_{n:04d}">\n'
            f'\t\t\t<gml:name codeSpace="{_CL}WaterBody_name.xml">1</gml:name>\n'
            f'\t\t\t<wtr:class codeSpace="{_CL}WaterBody_class.xml">1140</wtr:class>\n'
            "\t\t\t<wtr:lod1MultiSurface>\n\t\t\t\t<gml:MultiSurface>\n"
            f"{members}"
            "\t\t\t\t</gml:MultiSurface>\n\t\t\t</wtr:lod1MultiSurface>\n"
            "\t\t\t<uro:floodingRiskAttribute>\n"
            "\t\t\t\t<uro:WaterBodyRiverFloodingRiskAttribute>\n"
            f'\t\t\t\t\t<uro:description codeSpace="{_CL}'
            'WaterBodyRiverFloodingRiskAttribute_description.xml">1</uro:description>\n'
            f'\t\t\t\t\t<uro:rank codeSpace="{_CL}'
            f'WaterBodyRiverFloodingRiskAttribute_rank.xml">{rank}</uro:rank>\n'
            f'\t\t\t\t\t<uro:rankOrg codeSpace="{_CL}'
            f'WaterBodyRiverFloodingRiskAttribute_rankOrg.xml">{org}</uro:rankOrg>\n'
            f'\t\t\t\t\t<uro:adminType codeSpace="{_CL}'
            'WaterBodyRiverFloodingRiskAttribute_adminType.xml">2</uro:adminType>\n'
            f'\t\t\t\t\t<uro:scale codeSpace="{_CL}'
            'WaterBodyRiverFloodingRiskAttribute_scale.xml">L1</uro:scale>\n'
            "\t\t\t\t</uro:WaterBodyRiverFloodingRiskAttribute>\n"
            "\t\t\t</uro:floodingRiskAttribute>\n"
            "\t\t</wtr:WaterBody>\n"
            "\t</core:cityObjectMember>\n"
        )
    parts.append("</core:CityModel>\n")
    return "".join(parts)
