#!/usr/bin/env python3
"""Mutation check of the guide rules: every comparator and threshold must be pinned by a test.

For each comparator in ``geoservice/guide/rules/*.yml`` the script makes mutants, one at a
time, in a copy of the rules: the comparator flipped (``>=`` ↔ ``>``, ``<=`` ↔ ``<``) and,
for a numeric limit, the limit moved by one unit up and down.  It runs the guide tests
against each copy (``GEOSERVICE_GUIDE_RULES`` points ``tests/guide_rules.py`` at it) and
fails if any mutant survives, printing the survivors.  A survivor means a threshold of a
procedure could be wrong and no test would notice.

The tests run in this process (``pytest.main`` with ``-x``; the test modules are dropped
from ``sys.modules`` between runs so they re-read the rules), which keeps the whole check
to a couple of minutes on two cores.  Usage::

    python tools/mutation.py            # all mutants
    python tools/mutation.py --list     # list the mutants without running them
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "geoservice" / "guide" / "rules"
ENV = "GEOSERVICE_GUIDE_RULES"
# Two stages: the boundary table kills almost every mutant in well under a second; only a
# mutant it misses pays for collecting the other guide tests.
STAGES = (["tests/test_guide_boundaries.py"],
          ["tests/test_guide_decisions.py", "tests/test_guide_engine.py"])
FLIP = {">=": ">", ">": ">=", "<=": "<", "<": "<="}


@dataclass(frozen=True)
class Mutant:
    """One change to one rule file: the node at ``path`` gets ``key: value``."""

    rule: str
    path: tuple[Any, ...]
    key: str
    value: Any
    label: str

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """A mutated deep copy of the rule's data."""
        out = copy.deepcopy(data)
        node: Any = out
        for step in self.path:
            node = node[step]
        node[self.key] = self.value
        return out


Path_ = tuple[Any, ...]


def _walk(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """Every mapping in ``node`` that holds a comparator, with its path."""
    if isinstance(node, dict):
        if node.get("comparator") in FLIP:
            yield path, node
        for k, v in node.items():
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))


def mutants_of(rule: str, data: dict[str, Any]) -> list[Mutant]:
    """The mutants of one rule: flips, and limits moved by one unit."""
    out = []
    for path, node in _walk(data.get("trigger", {}), ("trigger",)):
        cmp = node["comparator"]
        what = node.get("field", "?") + (f" vs {node['property']}" if "property" in node else "")
        where = f"{rule} {'.'.join(map(str, path))}"
        out.append(Mutant(rule, path, "comparator", FLIP[cmp],
                          f"{where}: {what} {cmp} → {FLIP[cmp]}"))
        limit = node.get("limit")
        if isinstance(limit, int | float) and not isinstance(limit, bool):
            for delta in (1, -1):
                out.append(Mutant(rule, path, "limit", limit + delta,
                                  f"{where}: {what} {cmp} {limit} → {limit + delta}"))
    return out


def load_all(directory: Path = RULES_DIR) -> dict[str, dict[str, Any]]:
    """Every rule file's data by rule id."""
    return {p.stem: yaml.safe_load(p.read_text("utf-8")) for p in sorted(directory.glob("*.yml"))}


def _write_copy(target: Path, rules: dict[str, dict[str, Any]], mutant: Mutant | None) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(RULES_DIR, target)
    if mutant is not None:
        data = mutant.apply(rules[mutant.rule])
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        (target / f"{mutant.rule}.yml").write_text(text, "utf-8")


def _run_tests(rules_dir: Path) -> bool:
    """Run the guide tests against ``rules_dir`` in this process; ``True`` when they pass."""
    os.environ[ENV] = str(rules_dir)
    for tests in STAGES:
        for name in [m for m in sys.modules
                     if m == "tests.guide_rules" or m.startswith("tests.test_")]:
            del sys.modules[name]
        args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", *tests]
        with contextlib.redirect_stdout(io.StringIO()):
            if pytest.main(args) != 0:
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run every mutant; print the survivors; exit 1 if any survives (or the base fails)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    rules = load_all()
    mutants = [m for rule, data in rules.items() for m in mutants_of(rule, data)]
    if args.list:
        print("\n".join(m.label for m in mutants))
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="guide-mutants-") as tmp:
        copy_dir = Path(tmp) / "rules"
        _write_copy(copy_dir, rules, None)
        if not _run_tests(copy_dir):
            print("mutation: the guide tests fail on the unmutated rules; fix them first")
            return 1
        survivors = []
        for i, m in enumerate(mutants, 1):
            _write_copy(copy_dir, rules, m)
            if _run_tests(copy_dir):
                survivors.append(m)
            if i % 25 == 0 or i == len(mutants):
                print(f"mutation: {i}/{len(mutants)} run, {len(survivors)} survived so far",
                      flush=True)
    took = time.perf_counter() - start
    print(f"mutation: {len(mutants)} mutants of {len(rules)} rules, "
          f"{len(mutants) - len(survivors)} killed, {len(survivors)} survived ({took:.0f} s)")
    for m in survivors:
        print(f"  SURVIVED {m.label}")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
