"""Count `Any` in the public signatures of egovmon's packages: the typed-seams figure of issue 18.

A package boundary is what another package can import: module-level functions and classes whose
names do not start with `_`, their public methods, and the annotated fields of public classes
(dataclasses, TypedDicts, pydantic models). Each annotation that mentions `Any` counts once;
`dict[str, Any]` is also counted on its own. Run: `python scripts/any_at_boundaries.py [ROOT]`.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

PACKAGES = ("core", "collectors", "probes", "agent", "inventory", "alerting", "dashboards", "server", "cli")


def _annotations(tree: ast.Module) -> list[str]:
    """Every annotation on the module's public surface, as source text."""
    found: list[str] = []

    def function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None and arg.annotation is not None:
                found.append(ast.unparse(arg.annotation))
        if node.returns is not None:
            found.append(ast.unparse(node.returns))

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            function(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    if not item.name.startswith("_") or item.name == "__init__":
                        function(item)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    if not item.target.id.startswith("_"):
                        found.append(ast.unparse(item.annotation))
    return found


def count(root: Path) -> dict[str, Counter[str]]:
    """Per package: annotations mentioning Any, and of those the dict[str, Any] ones."""
    result: dict[str, Counter[str]] = {}
    for package in PACKAGES:
        tally: Counter[str] = Counter()
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for text in _annotations(ast.parse(path.read_text(), str(path))):
                if re.search(r"\bAny\b", text):
                    tally["any"] += 1
                    if "dict[str, Any]" in text or "Mapping[str, Any]" in text:
                        tally["dict_str_any"] += 1
        result[package] = tally
    return result


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    result = count(root)
    for package, tally in result.items():
        print(f"{package:<11} Any {tally['any']:>4}   of them dict/Mapping[str, Any] {tally['dict_str_any']:>4}")
    print(f"{'total':<11} Any {sum(t['any'] for t in result.values()):>4}   "
          f"of them dict/Mapping[str, Any] {sum(t['dict_str_any'] for t in result.values()):>4}")


if __name__ == "__main__":
    main()
