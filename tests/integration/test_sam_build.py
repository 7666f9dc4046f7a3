"""`sam build` without Docker: what it puts in each function and in the dependencies layer."""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drainctl.template import Template, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PACKAGE = ROOT / "functions" / "drain_coordinator"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
LAYER = "DependenciesLayer"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAM.exists():
        pytest.fail(f"{SAM.relative_to(ROOT)} is missing: `make dev` creates it")
    build = tmp_path_factory.mktemp("sam") / "build"
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        # The layer's Makefile runs pip from this interpreter, whatever python3 is on PATH.
        "PIP": f"{shlex.quote(sys.executable)} -m pip",
    }
    result = subprocess.run(  # noqa: S603 - a fixed command line
        [
            str(SAM),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build),
            "--no-cached",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build


def _function_ids(template: Template) -> list[str]:
    ids = template.logical_ids("AWS::Serverless::Function")
    assert ids, "the template has no function"
    return ids


def _sources(root: Path) -> set[str]:
    """Python sources under root, as paths relative to root, bytecode and tests left out."""
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts and "tests" not in path.parts
    }


def _third_party_imports(package: Path) -> Iterator[tuple[str, str]]:
    """(module, file) for each top-level package the coordinator imports at run time.

    Imports under `if TYPE_CHECKING:` are left out: the runtime never executes them.
    """
    local = {package.name, "__future__"}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _runtime_nodes(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in local and top not in sys.stdlib_module_names:
                    yield top, path.relative_to(package.parent).as_posix()


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def test_each_function_ships_its_handler_module(template: Template, build_dir: Path) -> None:
    for route in template.function_routes(
        params=template.parameters(
            {
                "LiveKitUrl": "wss://livekit.example.com",
                "LiveKitSecretArn": ("arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf"),
            }
        )
    ):
        # GIVEN a function's handler, e.g. drain_coordinator.handlers.lifecycle.handler
        module = route.handler.rsplit(".", 1)[0]

        # WHEN its artifact is looked at
        artifact = build_dir / route.logical_id

        # THEN the handler's module is there, at the path the runtime imports it from
        assert (artifact / (module.replace(".", "/") + ".py")).is_file(), route.handler


def test_function_artifacts_hold_the_package_and_nothing_else(template: Template, build_dir: Path) -> None:
    for logical_id in _function_ids(template):
        # GIVEN a function's artifact
        artifact = build_dir / logical_id

        # WHEN its content is listed
        top_level = {entry.name for entry in artifact.iterdir()}
        everything = list(artifact.rglob("*"))

        # THEN it is the drain_coordinator package, every source with the runtime's bytecode, no tests
        assert top_level == {"drain_coordinator"}
        assert _sources(artifact / "drain_coordinator") == _sources(PACKAGE)
        compiled = {
            (p.parent.parent / p.name.split(".")[0]).relative_to(artifact / "drain_coordinator").as_posix()
            + ".py"
            for p in everything
            if p.suffix == ".pyc"
        }
        assert compiled == _sources(PACKAGE)
        assert all(_is_runtime_bytecode(p) for p in everything if p.suffix == ".pyc")
        assert [p for p in everything if p.name == "tests" or p.name.startswith("test_")] == []


def test_layer_holds_every_third_party_package_the_coordinator_imports(build_dir: Path) -> None:
    # GIVEN the third-party packages imported anywhere in drain_coordinator
    imports = dict(_third_party_imports(PACKAGE))
    assert imports, "drain_coordinator imports no third-party package?"

    # WHEN the layer's python/ folder is looked at
    site = build_dir / LAYER / "python"

    # THEN each is importable from it, as a package or a module
    missing = {
        module: where
        for module, where in imports.items()
        if not (site / module).is_dir() and not (site / f"{module}.py").is_file()
    }
    assert missing == {}


def test_layer_extensions_are_built_for_lambda_arm64_python_313(build_dir: Path) -> None:
    # GIVEN the layer's compiled extension modules
    extensions = list((build_dir / LAYER / "python").rglob("*.so"))
    assert extensions, "pydantic-core at least is compiled"

    # WHEN their platform tags are read
    versioned = [p.name for p in extensions if ".cpython-" in p.name]

    # THEN each is for CPython 3.13 on Linux aarch64 (or the stable ABI)
    assert all("cpython-313-aarch64-linux-gnu" in name for name in versioned), versioned
    assert all(".abi3." in p.name for p in extensions if ".cpython-" not in p.name)


def test_layer_holds_the_runtimes_bytecode_and_no_other(build_dir: Path) -> None:
    # GIVEN the layer's compiled modules
    site = build_dir / LAYER / "python"
    compiled = list(site.rglob("*.pyc"))

    # WHEN they are looked at
    # THEN there is bytecode for the modules the handlers import (pydantic's, boto3's...), all of
    # it CPython 3.13's, loaded without checking the source
    assert any(p.name.startswith("main.") for p in (site / "pydantic" / "__pycache__").iterdir())
    assert (site / "boto3" / "__pycache__").is_dir()
    assert all(_is_runtime_bytecode(p) for p in compiled)


# CPython 3.13's bytecode: the magic number starting every .pyc (importlib.util.MAGIC_NUMBER),
# and PEP 552's flags word, 0b01: hash-based, 0b10 unset: not checked against the source.
# https://peps.python.org/pep-0552/
_MAGIC_313 = (3571).to_bytes(2, "little") + b"\r\n"
_UNCHECKED_HASH = 0b01


def _is_runtime_bytecode(path: Path) -> bool:
    header = path.read_bytes()[:8]
    return (
        ".cpython-313." in path.name
        and header[:4] == _MAGIC_313
        and int.from_bytes(header[4:8], "little") == _UNCHECKED_HASH
    )


def test_built_template_points_each_function_at_its_artifact(template: Template, build_dir: Path) -> None:
    # GIVEN the template sam build wrote next to the artifacts
    built = load_template(build_dir / "template.yaml")

    # WHEN each function's code location is read
    resources = built.body["Resources"]

    # THEN functions and the layer point at their own built folders
    for logical_id in _function_ids(template):
        assert resources[logical_id]["Properties"]["CodeUri"] == logical_id
    assert resources[LAYER]["Properties"]["ContentUri"] == LAYER
