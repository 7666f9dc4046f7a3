"""README's "Failure modes" table and this suite agree: one row per test, no row without a test."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"


def fault_tests() -> set[str]:
    found = set()
    for module in HERE.glob("test_*.py"):
        if module.name == Path(__file__).name:
            continue
        tree = ast.parse(module.read_text())
        found |= {
            f"{module.stem}::{node.name}"
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        }
    return found


def table_rows() -> list[str]:
    text = README.read_text().split("## Failure modes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`(test_\w+::test_\w+)`", text)


def test_every_fault_test_has_one_row_in_the_readme_table_and_every_row_a_test() -> None:
    rows = table_rows()
    assert len(rows) == len(set(rows)), "a test is named twice in the table"
    assert set(rows) == fault_tests()
