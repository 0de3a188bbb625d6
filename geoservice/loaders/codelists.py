"""PLATEAU code lists: decode coded CityGML attributes (``urf:function`` -> 第1種住居地域).

PLATEAU GML writes coded values as ``<urf:function codeSpace="../../codelists/X.xml">5``.
The ``codeSpace`` path is relative to the original dataset layout, which a mirror rarely
reproduces, so a list is resolved by its **file name** in one code-list directory.  When
the list is absent (the mirror lacks ``Common_urbanPlanType.xml`` for instance) the code
is kept raw and the miss is reported to the caller, never dropped: a zoning code without
its label is still the legal fact.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path, PurePosixPath

from lxml import etree

from geoservice.errors import SourceError

_GML_NS = ("http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2")
#: Absent lists met since the last ``take_absent`` (a build reports them once, in one line,
#: instead of one warning per list).
_ABSENT: set[str] = set()


def take_absent() -> list[str]:
    """The code lists found absent since the last call (sorted), forgetting them."""
    names = sorted(_ABSENT)
    _ABSENT.clear()
    return names


@lru_cache(maxsize=128)
def read_codelist(path: Path) -> dict[str, str]:
    """Read one gml:Dictionary code list into ``{code: description}``."""
    try:
        tree = etree.parse(str(path))
    except (OSError, etree.XMLSyntaxError) as exc:
        raise SourceError(f"code list {path.name}: cannot read: {exc}") from None
    codes: dict[str, str] = {}
    for ns in _GML_NS:
        for definition in tree.iter(f"{{{ns}}}Definition"):
            name = definition.findtext(f"{{{ns}}}name")
            description = definition.findtext(f"{{{ns}}}description")
            if name is not None and description is not None:
                codes[name.strip()] = description.strip()
    return codes


class CodeLists:
    """Resolve ``codeSpace`` references by file name in ``directory`` (or next to the GML).

    Parameters
    ----------
    directory
        The mirror's code-list directory (``plateau/codelists``); ``None`` to rely only on
        the ``codeSpace`` path relative to each GML file.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.missing: set[str] = set()

    def path_for(self, code_space: str, gml_file: Path | None = None) -> Path | None:
        """The local file for a ``codeSpace`` reference, or ``None`` if not available."""
        name = PurePosixPath(code_space.replace("\\", "/")).name
        candidates: list[Path] = []
        if self.directory is not None:
            candidates.append(self.directory / name)
        if gml_file is not None and not code_space.startswith(("http://", "https://")):
            candidates.append(gml_file.parent / code_space)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        return None

    def decode(self, code_space: str, code: str, gml_file: Path | None = None) -> str | None:
        """The label for ``code`` in the list named by ``code_space``; ``None`` if unknown.

        ``None`` covers both an absent list and a code missing from a present list; absent
        lists are collected for the build's one-line note (``take_absent``).
        """
        path = self.path_for(code_space, gml_file)
        if path is None:
            name = PurePosixPath(code_space).name
            self.missing.add(name)
            _ABSENT.add(name)
            return None
        return read_codelist(path).get(code.strip())
