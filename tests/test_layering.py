"""The layering holds: the numerical cores know nothing of Ray, no module imports itself back
through others, and Ray's internals are reached from one checked module per package.

The last two are read from the source with ``ast``, without importing anything: an import
inside a function is an edge of the import graph like one at the top of a module.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "search_algs", "schedulers", "benchmarks")  # what setup installs, and benchmarks
#: The one module per package allowed to reach Ray's internals; each names the Ray version it
#: was checked against and has a ``verify()`` that fails loudly when they move.
RAY_PRIVATE_MODULE = "_ray_private"


def core_modules() -> list[str]:
    names = []
    for package in ("search_algs/core", "schedulers/core"):
        for path in sorted((ROOT / package).glob("*.py")):
            names.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return names


def test_core_modules_import_without_ray():
    modules = core_modules() + ["search_algs.space", "search_algs.converters"]
    code = "import sys; sys.modules['ray'] = None\n" + "\n".join(f"import {m}" for m in modules)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---- the modules, parsed once ----------------------------------------------------------------


@functools.cache
def our_modules() -> dict[str, tuple[pathlib.Path, ast.Module]]:
    """``{dotted name: (path, syntax tree)}`` of every module of :data:`PACKAGES`."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = (path, ast.parse(path.read_text(), filename=str(path)))
    return modules


def _imported(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[tuple[str, list[str]]]:
    """``(imported module path, names taken from it)`` for one import statement."""
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the package of `module`
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [(base, [alias.name for alias in node.names])]


# ---- no import circle ------------------------------------------------------------------------


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of PACKAGES it imports}``, from every import statement anywhere in it
    (module level, inside functions, under ``if``). ``from package import name`` is an edge to
    the submodule ``package.name`` when there is one, else to the package. The implicit import
    of a parent package's ``__init__`` is not an edge (every submodule would have it)."""
    modules = our_modules()

    def ours(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, (path, tree) in modules.items():
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for base, names in _imported(module, node, path.name == "__init__.py"):
                    targets = [ours(f"{base}.{n}") for n in names] if names else [ours(base)]
                    edges.update(t for t in targets if t is not None)
        edges.discard(module)
        graph[module] = edges
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return [_cycle_through(component, graph) for component in components]


def _cycle_through(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle from the component's first module back to it, for the message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_import_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert sorted(import_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    cycles = import_cycles(import_graph())
    assert not cycles, "import circles (an import inside a function counts too):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles)


# ---- Ray's internals in one checked module per package -----------------------------------------

#: Ray modules that are internal although no part of their path starts with "_".
RAY_INTERNAL_PACKAGES = ("ray.tune.execution", "ray.tune.impl")
#: Path parts of Tune's staging folders on the driver (under Ray's temp folder), as glob patterns
#: or names: only the checked modules may know that layout.
RAY_TEMP_LAYOUT = {"session_*", "session_latest", "driver_artifacts"}


@functools.cache
def ray_private_attributes() -> frozenset[str]:
    """Underscore attributes that Ray Tune, Train and AIR give their objects (assigned on
    ``self`` or defined in a class body), read from the installed Ray's source."""
    import importlib.util

    ray_dir = pathlib.Path(importlib.util.find_spec("ray").origin).parent
    names = set()
    for sub in ("tune", "train", "air"):
        for path in (ray_dir / sub).rglob("*.py"):
            if "tests" in path.parts or "examples" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_bytes())):
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                        and isinstance(node.value, ast.Name) and node.value.id == "self":
                    names.add(node.attr)
                elif isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                            names.add(item.name)
                        elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return frozenset(n for n in names if _private(n))


@functools.cache
def our_private_names() -> frozenset[str]:
    """Underscore names our own code defines (functions, classes, module and class variables,
    attributes set on ``self``/``cls``) outside the checked modules: an access to one of those is
    to our object, even where Ray uses the same name."""
    names = set()
    for module, (_, tree) in our_modules().items():
        if module.rpartition(".")[2] == RAY_PRIVATE_MODULE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
    return frozenset(n for n in names if _private(n))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_ray_module(path: str) -> bool:
    parts = path.split(".")
    return parts[0] == "ray" and (any(_private(p) for p in parts) or any(
        path == p or path.startswith(p + ".") for p in RAY_INTERNAL_PACKAGES))


def ray_private_uses(module: str, tree: ast.Module, is_package: bool = False) -> list[str]:
    """``line: what`` for every reach into Ray's internals in one module that can be told from
    its source: an import of a private Ray module (a part starting with ``_``, or
    :data:`RAY_INTERNAL_PACKAGES`) or of a private name from a Ray module; an underscore attribute
    of a name bound to a Ray module (``ray._private``); an underscore attribute that only Ray's
    objects have (``tuner._local_tuner``, ``getattr(grid, "_experiment_analysis")``); the layout
    of Tune's staging folders in Ray's temp folder (``session_*/.../driver_artifacts``)."""
    ray_private, ours = ray_private_attributes(), our_private_names()
    ray_names, other_names = set(), set()  # local names bound to Ray modules / to other imports
    annotations_only = _type_checking_imports(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in annotations_only:
            for base, names in _imported(module, node, is_package):
                is_ray = base == "ray" or base.startswith("ray.")
                if isinstance(node, ast.Import):
                    bound = {(a.asname or a.name.split(".")[0]) for a in node.names}
                    paths = [base]
                else:
                    bound = {(a.asname or a.name) for a in node.names}
                    paths = [f"{base}.{n}" for n in names]
                (ray_names if is_ray else other_names).update(bound)
                for path in paths:
                    if is_ray and _private_ray_module(path):
                        found.append(f"{node.lineno}: imports {path}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            root_name = root.id if isinstance(root, ast.Name) else None
            if root_name in ray_names:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
            elif node.attr in ray_private and node.attr not in ours and root_name not in ("self", "cls") \
                    and root_name not in other_names:
                found.append(f"{node.lineno}: {ast.unparse(node)} (a Ray object's internal)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            name = node.args[1].value
            if _private(name) and name in ray_private and name not in ours:
                found.append(f"{node.lineno}: {ast.unparse(node)} (a Ray object's internal)")
        elif isinstance(node, ast.Constant) and node.value in RAY_TEMP_LAYOUT:
            found.append(f"{node.lineno}: {node.value!r} (the layout of Ray's temp folder)")
    return sorted(set(found), key=lambda line: int(line.split(":", 1)[0]))


def _type_checking_imports(tree: ast.Module) -> set[ast.AST]:
    """Imports under ``if TYPE_CHECKING:``: they name a type for annotations (Ray's scheduler
    interface takes a ``TuneController``) and never run, so they reach nothing of Ray's."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for statement in node.body:
                inside.update(ast.walk(statement))
    return inside


def test_ray_private_uses_are_found():
    code = '''
import ray
import ray.tune as rt
from ray.tune.execution.tune_controller import TuneController
from ray.train._internal.session import _TrainingResult
from ray import tune
import mlflow.tracking as mt
def f(tuner, grid, utils):
    ray._private.state.state.get_cluster_config()
    tuner._local_tuner.get_run_config()
    getattr(grid, "_experiment_analysis", None)
    glob.glob(os.path.join(root, "session_*", "artifacts", "*", name, "driver_artifacts"))
    rt.Tuner(trainable)  # public
    mt._tracking_service  # not Ray's
    self._local_tuner  # an object's own attribute
if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController  # annotations only
'''
    lines = [line.split(":")[0] for line in ray_private_uses("example", ast.parse(code))]
    assert lines == ["4", "5", "9", "10", "11", "12", "12"], ray_private_uses("example", ast.parse(code))


def test_ray_internals_are_reached_from_the_checked_modules_only():
    """Each package reaches Ray's internals only through its ``_ray_private.py``, whose
    ``verify()`` names what moved after a Ray upgrade."""
    outside = {}
    for module, (path, tree) in our_modules().items():
        if module.rpartition(".")[2] == RAY_PRIVATE_MODULE:
            continue
        uses = ray_private_uses(module, tree, path.name == "__init__.py")
        if uses:
            outside[str(path.relative_to(ROOT))] = uses
    assert not outside, "Ray internals reached outside the _ray_private.py modules (move them there):\n" + \
        "\n".join(f"  {path}:{use}" for path, uses in sorted(outside.items()) for use in uses)


def test_the_checked_modules_match_the_installed_ray():
    import orchestrator._ray_private
    import schedulers._ray_private

    orchestrator._ray_private.verify()
    schedulers._ray_private.verify()
    schedulers._ray_private.verify_exact_resume_hooks()
    schedulers._ray_private.verify_keep_local_result_files()
