"""Code fingerprints: the project code that computes an asset's rows, read from source and hashed per function."""

from __future__ import annotations

import ast
import contextvars
import hashlib
import importlib.util
import inspect
import json
import marshal
import os
import sys
import textwrap
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

#: Quarry's own packages: always project code, even when installed into site-packages.
PROJECT_PACKAGES = frozenset({"assets", "quality", "pipelines", "warehouse"})

#: "assets/indicators/maths.py:rsi" -> digest of that definition's normalized source.
Digests = dict[str, str]

#: What a name resolves to: a project module, or a definition (module, top-level name) in one.
Target = tuple[str, str | None]

#: Digests computed before, by roots and values, each with the content digests of the source files it read.
DIGEST_CACHE_FILE = Path.home() / ".cache" / "quarry" / f"fingerprints-py{sys.version_info[0]}.{sys.version_info[1]}.json"
#: Entries the cache keeps (the most recently stored): a few graphs' worth of assets.
DIGEST_CACHE_ENTRIES = 512


def digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_digests(roots: Iterable[Callable[..., Any]], values: Mapping[str, Any] | None = None) -> Digests:
    """Digests of `roots` and of every project function, class and constant they reach, across modules.

    Like SQLMesh's `build_env`, but read statically from source files, so fingerprinting
    a graph imports none of the helper modules (and none of their heavy dependencies).
    Docstrings, comments, formatting and the roots' own decorators do not count; a
    helper's decorators do (`@dataclass(frozen=True)` changes behaviour). `values` adds
    named plain values (parameters, look-backs) as entries of their own.

    Parsing and walking the sources costs about a hundredth of a CPU-second per asset, so
    the result is kept in `DIGEST_CACHE_FILE` with the content digest of every source file
    consulted, and reused only while each of those files still has that content.
    """
    roots = list(roots)
    key = _cache_key(roots, values)
    cached = _DIGEST_CACHE.get(key) if key is not None else None
    if cached is not None:
        return cached
    consulted: set[str] = set()
    token = _CONSULTED.set(consulted)
    try:
        digests = _compute_digests(roots, values)
    finally:
        _CONSULTED.reset(token)
    if key is not None:
        _DIGEST_CACHE.put(key, consulted, digests)
    return digests


def _compute_digests(roots: list[Callable[..., Any]], values: Mapping[str, Any] | None) -> Digests:
    digests: Digests = {}
    pending: list[Target] = []
    for root in roots:
        pending.extend(_digest_root(root, digests))
    seen: set[Target] = set()
    while pending:
        target = pending.pop()
        if target in seen or target[1] is None:
            continue
        seen.add(target)
        module_name, name = target
        index = _module_index(module_name)
        if index is None or name not in index.definitions:
            continue
        digests[f"{index.path}:{name}"], targets = index.digest(name)
        pending.extend(targets)
    for name, value in sorted((values or {}).items()):
        digests[name] = digest_text(repr(_plain(value)))
    return digests


def _cache_key(roots: list[Callable[..., Any]], values: Mapping[str, Any] | None) -> str | None:
    """What identifies a computation: each root's source file, module, name and closure, and the values; None
    when a root has no project source file (made by `exec`), since then only its compiled code tells it apart.

    The file is part of the key because two checkouts share the cache: the same module name in
    another checkout is other code, whose entry would otherwise pass its own files' content test.
    """
    described = []
    for root in roots:
        module_name = getattr(root, "__module__", None)
        found = _source_file(module_name) if module_name and is_project_module(module_name) else None
        if found is None or found[0].suffix != ".py":
            return None
        cells = [cell.cell_contents for cell in getattr(root, "__closure__", None) or ()]
        described.append([str(found[0]), module_name, root.__qualname__, repr([_plain(value) for value in cells])])
    text = json.dumps([described, repr(_plain(dict(values or {})))])
    return digest_text(text)


class _DigestCache:
    """Digests by computation key, in one JSON file shared by every process of this Python version.

    An entry holds the content digest of every source file its computation read; it is
    used only while all of them still match, so an edit anywhere it reached recomputes it.
    A file that cannot be read or written only costs the computation.
    """

    def __init__(self, path: Path):
        self.path = path
        self._entries: dict[str, dict] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, dict]:
        if self._entries is None:
            try:
                self._entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def get(self, key: str) -> Digests | None:
        with self._lock:
            entry = self._loaded().get(key)
        if entry is None or any(_content_digest(file) != digest for file, digest in entry["files"].items()):
            return None
        return dict(entry["digests"])

    def put(self, key: str, files: set[str], digests: Digests) -> None:
        entry = {"files": {file: _content_digest(file) for file in sorted(files)}, "digests": digests}
        if None in entry["files"].values():
            return
        with self._lock:
            entries = self._loaded()
            entries.pop(key, None)
            entries[key] = entry
            for stale in list(entries)[: max(0, len(entries) - DIGEST_CACHE_ENTRIES)]:
                del entries[stale]
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                partial = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                partial.write_text(json.dumps(entries), encoding="utf-8")
                partial.replace(self.path)  # atomic: a concurrent reader sees the old file or the new one
            except OSError:
                pass


def _content_digest(file: str) -> str | None:
    try:
        stat = os.stat(file)
    except OSError:
        return None
    return _file_digest(file, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=1024)
def _file_digest(file: str, mtime_ns: int, size: int) -> str | None:
    """A source file's content digest, once per file version in this process."""
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()
    except OSError:
        return None


_DIGEST_CACHE = _DigestCache(DIGEST_CACHE_FILE)
#: The source files the computation in progress (in this context) has read.
_CONSULTED: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("consulted", default=None)


def combined_digest(digests: Mapping[str, str]) -> str:
    """One code version for a set of per-definition digests.

    Only the digests count, not where they live: moving a helper to another module
    leaves the version alone, changing what any of them computes does not.
    """
    return digest_text("|".join(sorted(digests.values())))[:12]


def changed_definitions(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The definitions (and values) that differ between two digest sets: edited ones first, then added, then removed."""
    edited = sorted(key for key in before.keys() & after.keys() if before[key] != after[key])
    return edited + sorted(after.keys() - before.keys()) + sorted(before.keys() - after.keys())


def metadata_digest(metadata: Mapping[str, Any]) -> str:
    """A digest of what describes an asset without changing its rows (docstring, tags, freshness...)."""
    return digest_text(repr(sorted((k, _plain(v)) for k, v in metadata.items())))


# ---- roots: live function objects --------------------------------------------------------


def _digest_root(root: Callable[..., Any], digests: Digests) -> list[Target]:
    """Digest one root function (its decorators dropped) and return what it references."""
    module_name = getattr(root, "__module__", None) or "__main__"
    index = _module_index(module_name)
    label = f"{index.path if index else module_name}:{root.__qualname__}"
    try:
        node = ast.parse(textwrap.dedent(inspect.getsource(root))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        # defined without a source file (exec, a REPL): the compiled code is all there is
        digests[label] = digest_text(marshal.dumps(root.__code__).hex())
        return []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        node.decorator_list = []  # the declaration (@asset(...)) is metadata, not what computes rows
    _DropDocstrings().visit(node)
    closure = _closure_text(root, digests)
    digests[label] = digest_text(_normalized(node) + closure)
    return _resolve_references(index, node) if index else []


def _closure_text(root: Callable[..., Any], digests: Digests) -> str:
    """Values a factory-made function closes over (the dataset a fetch is for) become part of it."""
    code = getattr(root, "__code__", None)
    if code is None or not root.__closure__:
        return ""
    parts = []
    for name, cell in zip(code.co_freevars, root.__closure__):
        value = cell.cell_contents
        if inspect.isfunction(value):
            _digest_root(value, digests)
            parts.append(f"{name}=<{value.__module__}.{value.__qualname__}>")
        else:
            parts.append(f"{name}={_plain(value)!r}")
    return "\n# closure: " + ", ".join(parts)


def _plain(value: Any) -> Any:
    """A stable, comparable form of a parameter value (dict order and set order do not matter)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(repr(_plain(v)) for v in value))
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if inspect.isfunction(value) or inspect.isclass(value):
        return f"<{value.__module__}.{value.__qualname__}>"
    return value


# ---- source normalization ----------------------------------------------------------------


class _DropDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(
            body[0].value.value, str
        ):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def _normalized(node: ast.AST) -> str:
    """Source as the parser sees it: comments and formatting gone (docstrings are dropped when parsing)."""
    return ast.unparse(node)


# ---- static module indexes -----------------------------------------------------------------


@dataclass(frozen=True)
class ModuleIndex:
    """A project module as its source declares it: top-level definitions and imported names."""

    name: str
    path: str
    definitions: dict[str, tuple[ast.stmt, ...]]
    imports: dict[str, Target]
    #: name -> (digest, targets it references): filled on first use, valid for this file version
    digested: dict[str, tuple[str, tuple[Target, ...]]] = field(default_factory=dict, compare=False, repr=False)

    def digest(self, name: str) -> tuple[str, tuple[Target, ...]]:
        """A top-level definition's digest and the project definitions it references."""
        if name not in self.digested:
            statements = self.definitions[name]
            text = "\n".join(_normalized(statement) for statement in statements)
            targets = tuple(t for statement in statements for t in _resolve_references(self, statement))
            self.digested[name] = (digest_text(text), targets)
        return self.digested[name]


def is_project_module(module_name: str) -> bool:
    top = module_name.partition(".")[0]
    return top in PROJECT_PACKAGES or _is_project_top_level(top)


@lru_cache(maxsize=None)
def _is_project_top_level(top: str) -> bool:
    """Not the standard library, not an installed distribution: code that lives with the project."""
    if top in sys.stdlib_module_names or top in ("__future__", "__main__", "builtins"):
        return False
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    origin = spec.origin if spec and spec.origin not in (None, "built-in", "frozen") else None
    if origin is None and spec and spec.submodule_search_locations:
        origin = next(iter(spec.submodule_search_locations), None)
    if origin is None:
        return False
    parts = Path(origin).parts
    return "site-packages" not in parts and "dist-packages" not in parts


def _source_file(module_name: str) -> tuple[Path, bool] | None:
    """The file that defines a project module, found on disk without importing it (or its parents)."""
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None):
        path = Path(loaded.__file__)
        return path, path.name == "__init__.py"
    top, *rest = module_name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return (Path(spec.origin), spec.submodule_search_locations is not None) if spec.origin else None
    for location in spec.submodule_search_locations or ():
        base = Path(location).joinpath(*rest)
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
    return None


def _module_index(module_name: str) -> ModuleIndex | None:
    if not is_project_module(module_name):
        return None
    found = _source_file(module_name)
    if found is None or found[0].suffix != ".py":
        return None
    path, is_package = found
    try:
        stat = path.stat()
    except OSError:
        return None
    consulted = _CONSULTED.get()
    if consulted is not None:
        consulted.add(str(path))
    return _parse_module(module_name, str(path), is_package, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _parse_module(module_name: str, file: str, is_package: bool, mtime_ns: int, size: int) -> ModuleIndex:
    """Parse once per file version (the cache key carries its mtime and size, so an edit is re-read)."""
    tree = _DropDocstrings().visit(ast.parse(Path(file).read_text(encoding="utf-8"), filename=file))
    package = module_name if is_package else module_name.rpartition(".")[0]
    definitions: dict[str, list[ast.stmt]] = {}
    imports: dict[str, Target] = {}
    for statement in _top_level(tree.body):
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions.setdefault(statement.name, []).append(statement)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for name in _assigned_names(targets):
                definitions.setdefault(name, []).append(statement)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            imports.update(_imported_names(statement, package))
    display = module_name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
    return ModuleIndex(module_name, display, {k: tuple(v) for k, v in definitions.items()}, imports)


def _top_level(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Module statements, looking inside top-level `if`/`try`/`with` blocks (optional imports, guards)."""
    for statement in body:
        if isinstance(statement, ast.If):
            yield from _top_level(statement.body + statement.orelse)
        elif isinstance(statement, ast.Try):
            yield from _top_level(
                statement.body + [s for h in statement.handlers for s in h.body] + statement.orelse + statement.finalbody
            )
        elif isinstance(statement, ast.With):
            yield from _top_level(statement.body)
        else:
            yield statement


def _assigned_names(targets: list[ast.expr]) -> Iterable[str]:
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id
        elif isinstance(target, (ast.Tuple, ast.List)):
            yield from _assigned_names(list(target.elts))


def _imported_names(statement: ast.Import | ast.ImportFrom, package: str) -> dict[str, Target]:
    """Local name -> (module, attribute) for one import statement; `import a.b` binds `a`."""
    if isinstance(statement, ast.Import):
        return {
            (alias.asname or alias.name.partition(".")[0]): (alias.name if alias.asname else alias.name.partition(".")[0], None)
            for alias in statement.names
        }
    module = statement.module or ""
    if statement.level:
        base = package.split(".")[: len(package.split(".")) - (statement.level - 1)] if package else []
        module = ".".join([*base, module] if module else base)
    return {(alias.asname or alias.name): (module, alias.name) for alias in statement.names if alias.name != "*"}


# ---- references ----------------------------------------------------------------------------


class _References(ast.NodeVisitor):
    """Free names a definition reads (annotations aside), dotted chains on them, and imports inside it.

    A name a function binds (a parameter, an assignment) is local there: `pair_spreads` the
    upstream frame is not `pair_spreads` the asset declared beside it.
    """

    def __init__(self, package: str):
        self.package = package
        self.names: set[str] = set()
        self.chains: set[tuple[str, ...]] = set()
        self.imports: dict[str, Target] = {}
        self._scopes: list[set[str]] = []

    def _is_local(self, name: str) -> bool:
        return any(name in scope for scope in self._scopes)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and not self._is_local(node.id):
            self.names.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and not self._is_local(value.id):
            self.chains.add((value.id, *reversed(chain)))
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.imports.update(_imported_names(node, self.package))

    visit_ImportFrom = visit_Import

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        body = node.body if isinstance(node.body, list) else [node.body]
        self._scopes.append(_bound_names(node.args, body))
        for statement in body:
            self.visit(statement)
        self._scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)


def _bound_names(args: ast.arguments, body: list[ast.stmt]) -> set[str]:
    """Names local to a function: its parameters and whatever its body binds (nested functions aside)."""
    bound = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    bound |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    declared_global: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_global.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            continue  # resolved as imports, not as locals
        stack.extend(ast.iter_child_nodes(node))
    return bound - declared_global


def _resolve_references(index: ModuleIndex, node: ast.AST) -> list[Target]:
    package = index.name if index.path.endswith("__init__.py") else index.name.rpartition(".")[0]
    refs = _References(package)
    refs.visit(node)
    found: list[Target] = []
    for name in refs.names:
        target = _resolve_name(index, refs.imports, name)
        if target and target[1] is not None:
            found.append(target)
    for head, *attributes in refs.chains:
        target = _resolve_name(index, refs.imports, head)
        for attribute in attributes:
            if target is None or target[1] is not None:
                break
            target = _resolve_import(target[0], attribute, depth=0)
        if target and target[1] is not None:
            found.append(target)
    return found


def _resolve_name(index: ModuleIndex, local_imports: dict[str, Target], name: str) -> Target | None:
    if name in local_imports:
        return _resolve_import(*local_imports[name], depth=0)
    if name in index.definitions:
        return (index.name, name)
    if name in index.imports:
        return _resolve_import(*index.imports[name], depth=0)
    return None


def _resolve_import(module: str, attribute: str | None, depth: int) -> Target | None:
    """Follow an imported name to the project module that defines it (through re-exports)."""
    if depth > 8 or not module or not is_project_module(module):
        return None
    if attribute is None:
        return (module, None) if _module_index(module) else None
    index = _module_index(module)
    if index is not None:
        if attribute in index.definitions:
            return (module, attribute)
        if attribute in index.imports:
            return _resolve_import(*index.imports[attribute], depth=depth + 1)
    submodule = f"{module}.{attribute}"
    return (submodule, None) if _module_index(submodule) else None
