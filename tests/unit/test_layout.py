"""The package's layout, held: one concept in one place.

handlers/ parse, call a service, emit (80 lines at most each); services/ sequence the I/O of
one capability each; domain/ holds the pure rules; integrations/ the adapters; the package
root only settings, observability and wiring. A concept's name (a module's, its plural
folded) seen in two layers has its rules in domain/, and each of the others imports that
domain module.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import drain_coordinator

PACKAGE = Path(drain_coordinator.__file__).parent
LAYERS = ("handlers", "services", "domain", "integrations")
MAX_HANDLER_LINES = 80


def concept(module: Path) -> str:
    """webhooks, webhook -> webhook; rescues, rescue -> rescue."""
    return module.stem.removesuffix("s")


def modules(package: Path, layer: str | None) -> list[Path]:
    folder = package / layer if layer else package
    return sorted(p for p in folder.glob("*.py") if not p.stem.startswith("_"))


def imported(module: Path) -> set[str]:
    """Every module `module` imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def long_handlers(package: Path) -> list[str]:
    return [
        f"handlers/{p.name}: {n} lines"
        for p in modules(package, "handlers")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_HANDLER_LINES
    ]


def root_modules_named_as_a_layers(package: Path) -> list[str]:
    in_layers: dict[str, str] = {}
    for layer in ("domain", *LAYERS):  # named by its domain module when it has one
        for p in modules(package, layer):
            in_layers.setdefault(concept(p), f"{layer}/{p.name}")
    return [
        f"{p.name} beside {in_layers[concept(p)]}" for p in modules(package, None) if concept(p) in in_layers
    ]


def concepts_split_from_their_domain(package: Path) -> list[str]:
    by_concept: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for layer in LAYERS:
        for p in modules(package, layer):
            by_concept[concept(p)].append((layer, p))
    found: list[str] = []
    for name, places in sorted(by_concept.items()):
        if len({layer for layer, _ in places}) < 2:
            continue
        domain = [p for layer, p in places if layer == "domain"]
        if not domain:
            found.append(
                f"{name}: in {', '.join(f'{layer}/{p.name}' for layer, p in places)}, none of them in domain/"
            )
            continue
        wanted = f"{package.name}.domain.{domain[0].stem}"
        found.extend(
            f"{layer}/{p.name} does not import {wanted}"
            for layer, p in places
            if layer != "domain" and wanted not in imported(p)
        )
    return found


def test_every_handler_is_at_most_80_lines() -> None:
    assert long_handlers(PACKAGE) == []


def test_no_module_at_the_root_shares_a_concept_with_a_layer() -> None:
    assert root_modules_named_as_a_layers(PACKAGE) == []


def test_a_concept_in_several_layers_is_one_domain_module_the_others_import() -> None:
    assert concepts_split_from_their_domain(PACKAGE) == []


def test_each_service_imports_its_same_named_domain_module() -> None:
    # The rule above, said of services/ alone: the pair a newcomer looks for first.
    domain = {p.stem for p in modules(PACKAGE, "domain")}
    services = modules(PACKAGE, "services")
    assert services, "no services/ folder"
    missing = [
        p.name for p in services if p.stem in domain and f"{PACKAGE.name}.domain.{p.stem}" not in imported(p)
    ]
    assert missing == []


def test_the_checks_find_a_split_concept(tmp_path: Path) -> None:
    # GIVEN the layout this replaced: webhooks at the root and in domain/, a long handler
    package = tmp_path / "drain_coordinator"
    for folder in ("handlers", "services", "domain", "integrations"):
        (package / folder).mkdir(parents=True)
    (package / "webhooks.py").write_text("from drain_coordinator.domain.webhooks import x\n")
    (package / "domain" / "webhooks.py").write_text("x = 1\n")
    (package / "handlers" / "webhook.py").write_text("import json\n" * 81)
    (package / "services" / "rescue.py").write_text("import json\n")
    (package / "domain" / "rescue.py").write_text("y = 1\n")
    # WHEN / THEN each check names what is wrong
    assert long_handlers(package) == ["handlers/webhook.py: 81 lines"]
    assert root_modules_named_as_a_layers(package) == ["webhooks.py beside domain/webhooks.py"]
    assert concepts_split_from_their_domain(package) == [
        "services/rescue.py does not import drain_coordinator.domain.rescue",
        "handlers/webhook.py does not import drain_coordinator.domain.webhooks",
    ]
