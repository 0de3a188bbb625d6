"""Streaming helpers shared by the PLATEAU CityGML readers.

Used by :mod:`geoservice.loaders.plateau_urf` (urban-planning and sediment zones; also
:mod:`geoservice.loaders.plateau_fld` through it) and :mod:`geoservice.loaders.citygml`
(buildings): local tag names, ``gml:id``, "file: line N"
error locations, ``iterparse`` failures as ``SourceError`` and releasing a consumed
``cityObjectMember`` so memory stays flat.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lxml import etree

from geoservice.catalogue import LayerSpec
from geoservice.errors import SourceError
from geoservice.loaders.codelists import CodeLists
from geoservice.loaders.common import resolve_aux

#: ``gml:id`` in GML 3.1 (CityGML 2.0) and GML 3.2.
GML_ID_ATTRS = ("{http://www.opengis.net/gml}id", "{http://www.opengis.net/gml/3.2}id")


def local_name(tag: Any) -> str:
    """An element's tag without its namespace ("" for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def gml_id(elem: etree._Element) -> str | None:
    """The element's ``gml:id`` (either GML version), or None."""
    return next((elem.get(a) for a in GML_ID_ATTRS if elem.get(a)), None)


def where(path: Path, elem: etree._Element) -> str:
    """``"<file name>: line <n>"`` for error messages."""
    return f"{path.name}: line {elem.sourceline}"


@contextmanager
def source_errors(path: Path) -> Iterator[None]:
    """Turn malformed XML (with its line) and unreadable files into ``SourceError``."""
    try:
        yield
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else (exc.position[0] if exc.position else "?")
        msg = re.sub(r",? line \d+, column \d+$", "", exc.msg or str(exc))
        raise SourceError(f"{path.name}: line {line}: malformed XML: {msg}") from None
    except OSError as exc:
        raise SourceError(f"{path.name}: cannot read: {exc}") from None


def release(elem: etree._Element) -> None:
    """Free a consumed ``iterparse`` element and the siblings read before it."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def spec_codelists(spec: LayerSpec, files: list[Path]) -> CodeLists:
    """The code lists named by the layer's ``codelists`` option (none when absent)."""
    options = spec.source.options
    directory = (
        resolve_aux(spec, files, str(options["codelists"])) if options.get("codelists") else None
    )
    return CodeLists(directory)
