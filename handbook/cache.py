"""The execution cache: run a chapter again only when something that decides its outputs changed.

A chapter's **key** is a SHA-256 over named components, each of which can change what the
executed notebook shows or what it records in the claims ledger:

- ``notebook``: every cell's type, source and tags (not outputs, execution counts or ids);
- ``mode``: the variables the kernel is started with (smoke or full, strict exercises, threads)
  and the papermill parameters;
- ``module:handbook/...``: the source of every ``handbook`` module the notebook uses, found by
  reading the imports (:func:`module_dependencies`), transitively;
- ``package:NAME``: the version of every third-party distribution imported by the notebook or by
  one of those modules (torch, numpy, scikit-learn, ...), and ``python``: the interpreter.

An entry stores the components, so a miss can say *what* changed ("handbook/attention.py
changed", "torch 2.13.0 -> 2.14.1").

The book pipeline (:mod:`handbook.book`) takes two steps around each execution: :func:`lookup`
(a hit, or why the notebook runs) and, after a successful run, :func:`commit` (the entry, with
the hashes of the executed copy and of the ledger records the run wrote, so that a later hit
also requires those files to be intact).

Why not jupyter-cache, which Jupyter Book 1 uses for ``execute_notebooks: cache``? It hashes a
notebook's code cells (and kernel name) only: a change to ``handbook/attention.py`` would leave
chapter 1's cached outputs in place, and so would a new torch. What fits is its idea of hashing
a normalized notebook rather than the file, which :func:`notebook_digest` does; the rest it
cannot express, so the key is computed here and the executed copies stay plain files in
``_build/site/notebooks`` that the book build reads.

**How imports are read.** Each source is parsed with :mod:`ast` (a notebook's magics and shell
lines are blanked first). ``import handbook.x`` and ``from handbook import x`` bind names to
modules; an attribute read on such a name (``plots.learning_curves``) is resolved to the module
that defines it. For the packages that only re-export, ``handbook.datasets``,
``handbook.models`` and ``handbook.plots``, that means the one submodule behind the name, not all
of them: a figure of chapter 9 does not invalidate chapter 1. This is exact only because a
package's modules define names and do nothing else at import time (``tests/test_cache.py`` checks
it). Anything the reader cannot follow (a module object passed around, ``getattr`` on it, a star
import) falls back to the whole module or package, so the key can be too strict, never too loose.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import json
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGE = "handbook"
#: Bumped when the meaning of a key changes, so older entries are never taken for current ones.
KEY_VERSION = 1
_MAGIC_LINE = re.compile(r"^\s*[%!?]")


# Reading imports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """Where the ``handbook`` sources live: ``root`` is the folder holding ``handbook/``."""

    root: Path

    def path_of(self, module: str) -> Path | None:
        """The source file of ``module`` (``handbook.plots`` -> ``handbook/plots/__init__.py``),
        or None when it is not a module of the package."""
        if module != PACKAGE and not module.startswith(PACKAGE + "."):
            return None
        base = self.root.joinpath(*module.split("."))
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
        return None

    def is_package(self, module: str) -> bool:
        path = self.path_of(module)
        return path is not None and path.name == "__init__.py"

    def submodules(self, package: str) -> list[str]:
        """Every module below ``package`` (recursively), for the whole-package fallback."""
        folder = self.root.joinpath(*package.split("."))
        names = []
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(self.root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        return names

    def relative(self, module: str) -> str:
        path = self.path_of(module)
        return path.relative_to(self.root).as_posix() if path else module


def parse_notebook_code(cells: Iterable[str]) -> ast.Module:
    """The code cells of a notebook as one module; IPython magics and ``!`` lines are blanked
    (they import nothing), and a cell that still does not parse raises ``SyntaxError`` naming it."""
    body: list[ast.stmt] = []
    for index, source in enumerate(cells):
        text = "\n".join("" if _MAGIC_LINE.match(line) else line for line in source.splitlines())
        try:
            body.extend(ast.parse(text).body)
        except SyntaxError as exc:
            raise SyntaxError(f"code cell {index} does not parse: {exc}") from exc
    return ast.Module(body=body, type_ignores=[])


@dataclass
class _Scope:
    """What one source refers to: whole modules, (module, name) symbols, third-party tops."""

    modules: set[str] = field(default_factory=set)
    symbols: set[tuple[str, str]] = field(default_factory=set)
    headers: set[str] = field(default_factory=set)
    third_party: set[str] = field(default_factory=set)


def _absolute(module: str | None, level: int, current: str, current_is_package: bool) -> str:
    if not level:
        return module or ""
    parts = current.split(".")
    if not current_is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, module] if module else parts)


def _read_source(tree: ast.AST, package: Package, current: str = "", is_pkg: bool = False):
    """Everything ``tree`` refers to (see :class:`_Scope`)."""
    scope = _Scope()
    aliases: dict[str, str] = {}  # local name -> handbook module it is bound to

    def bind_module(module: str, local: str | None) -> None:
        if local:
            aliases[local] = module
        scope.headers.add(module)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top != PACKAGE:
                    scope.third_party.add(top)
                    continue
                if alias.asname:
                    bind_module(alias.name, alias.asname)
                else:
                    aliases.setdefault(PACKAGE, PACKAGE)
                    # ``import handbook.a.b`` runs a and a.b: every module on the path counts
                    parts = alias.name.split(".")
                    for depth in range(1, len(parts) + 1):
                        scope.headers.add(".".join(parts[:depth]))
                    if len(parts) > 1:
                        scope.modules.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, current, is_pkg)
            top = module.split(".")[0]
            if top != PACKAGE:
                if top and not node.level:
                    scope.third_party.add(top)
                continue
            scope.headers.add(module)
            for alias in node.names:
                if alias.name == "*":
                    scope.modules.add(module)
                    continue
                child = f"{module}.{alias.name}"
                if package.path_of(child):
                    bind_module(child, alias.asname or alias.name)
                else:
                    scope.symbols.add((module, alias.name))
    _resolve_names(tree, aliases, package, scope)
    return scope


def _attribute_chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None for anything that is not a plain dotted name."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(names)]


def _resolve_names(tree: ast.AST, aliases: dict[str, str], package: Package, scope: _Scope):
    """Turn every use of a module alias into a module or (module, name) dependency."""
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or node.id not in aliases:
            continue
        outermost: ast.AST = node
        while isinstance(parents.get(id(outermost)), ast.Attribute):
            outermost = parents[id(outermost)]
        chain = _attribute_chain(outermost) or [node.id]
        module = aliases[node.id]
        rest = chain[1:]
        while rest and package.path_of(f"{module}.{rest[0]}"):
            module = f"{module}.{rest[0]}"
            scope.headers.add(module)
            rest = rest[1:]
        if rest:
            scope.symbols.add((module, rest[0]))
        elif not isinstance(parents.get(id(node)), ast.Import | ast.ImportFrom):
            scope.modules.add(module)  # the module object itself is used: all of it counts


@cache
def _parsed(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _tree(package: Package, module: str) -> ast.Module:
    path = package.path_of(module)
    return _parsed(path, path.stat().st_mtime_ns)


@cache
def _module_scope(package: Package, module: str, path: Path, mtime_ns: int) -> _Scope:
    """What a module refers to, read once per version of its file (scopes are never mutated)."""
    return _read_source(_parsed(path, mtime_ns), package, module, package.is_package(module))


def _defining_module(package: Package, module: str, name: str) -> tuple[str, str] | None:
    """Where ``module.name`` really comes from: (module, name) after following re-exports, or
    None when ``module`` itself defines it (or the reader cannot tell)."""
    tree = _tree(package, module)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node.module, node.level, module, package.is_package(module))
            for alias in node.names:
                if (alias.asname or alias.name) == name and source.split(".")[0] == PACKAGE:
                    child = f"{source}.{alias.name}"
                    if package.path_of(child):
                        return child, ""
                    return source, alias.name
    return None


@dataclass
class Dependencies:
    """What a notebook's outputs depend on: ``modules`` are the handbook source files (relative
    paths) and ``third_party`` the top-level names of other imported packages."""

    modules: set[str]
    third_party: set[str]


def module_dependencies(tree: ast.AST, package: Package) -> Dependencies:
    """Every handbook source file that ``tree`` (a notebook's code or a module) uses, directly or
    through other modules, and the third-party packages imported along the way."""
    files: set[str] = set()
    third_party: set[str] = set()
    done_modules: set[str] = set()
    done_symbols: set[tuple[str, str]] = set()
    pending_scopes = [_read_source(tree, package)]
    while pending_scopes:
        scope = pending_scopes.pop()
        third_party |= scope.third_party
        modules = set(scope.modules)
        for header in scope.headers:
            if package.path_of(header):
                files.add(package.relative(header))
                if not package.is_package(header):
                    modules.add(header)  # importing a module runs all of it
        symbols = list(scope.symbols)
        while symbols:
            module, name = symbols.pop()
            if (module, name) in done_symbols or not package.path_of(module):
                continue
            done_symbols.add((module, name))
            files.add(package.relative(module))
            if not package.is_package(module):
                modules.add(module)
                continue
            origin = _defining_module(package, module, name)
            if origin is None:
                modules.add(module)  # defined in the package's own __init__, or unknown
            elif origin[1]:
                symbols.append(origin)
            else:
                modules.add(origin[0])
        for module in modules - done_modules:
            if not package.path_of(module):
                continue
            done_modules.add(module)
            files.add(package.relative(module))
            path = package.path_of(module)
            pending_scopes.append(_module_scope(package, module, path, path.stat().st_mtime_ns))
            if package.is_package(module) and module in scope.modules:
                # a package used as a whole: every module below it
                for child in package.submodules(module):
                    if child not in done_modules:
                        pending_scopes.append(_Scope(modules={child}))
    return Dependencies(files, third_party)


# Keys --------------------------------------------------------------------------------------------


def _sha256(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def notebook_digest(notebook) -> str:
    """A hash of what a notebook *says* (each cell's type, source and tags), not of what its
    last run left in it (outputs, execution counts, cell ids, widget state)."""
    cells = [
        [cell.cell_type, cell.source, sorted(cell.get("metadata", {}).get("tags", []))]
        for cell in notebook.cells
    ]
    return _sha256(json.dumps(cells, ensure_ascii=False))


@cache
def _distribution_of() -> Mapping[str, list[str]]:
    """``{import name: [distribution, ...]}``. Python 3.10's ``packages_distributions`` reads
    only ``top_level.txt``, which wheels such as torch's and scikit-learn's do not ship; 3.11 and
    later also infer the names from each distribution's files, as this does on 3.10."""
    mapping = importlib.metadata.packages_distributions()
    if sys.version_info >= (3, 11):
        return mapping
    inferred: dict[str, list[str]] = {name: list(owners) for name, owners in mapping.items()}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        for top in _top_level_names(distribution.files or ()):
            owners = inferred.setdefault(top, [])
            if name not in owners:
                owners.append(name)
    return inferred


def _top_level_names(files) -> set[str]:
    """The importable top-level names a distribution's files provide (as Python 3.11 infers)."""
    names = set()
    for file in files:
        first = file.parts[0] if len(file.parts) > 1 else inspect.getmodulename(file.name)
        if first and "." not in first and not first.startswith("__"):
            names.add(first)
    return names


def package_versions(top_level_names: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` of the installed distributions providing these import names
    (``sklearn`` -> ``scikit-learn``); names of the standard library are left out, and a name no
    installed distribution provides is kept as ``not installed``."""
    versions = {}
    for name in sorted(set(top_level_names)):
        if name in sys.stdlib_module_names or name == PACKAGE:
            continue
        distributions = _distribution_of().get(name)
        if not distributions:
            versions[name] = "not installed"
            continue
        for distribution in distributions:
            try:
                versions[distribution] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                versions[distribution] = "not installed"
    return versions


def key_components(
    notebook_path: Path,
    *,
    environment: Mapping[str, str],
    parameters: Mapping | None = None,
    package_root: Path,
) -> dict[str, str]:
    """The named parts of ``notebook_path``'s key (see the module docstring); each value is a
    digest or a version, so that two sets of components can be compared part by part."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    package = Package(package_root)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    dependencies = module_dependencies(parse_notebook_code(code), package)
    components = {
        "key-version": str(KEY_VERSION),
        "notebook": notebook_digest(notebook),
        "mode": json.dumps(
            {"environment": dict(sorted(environment.items())), "parameters": parameters or {}},
            sort_keys=True,
        ),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": platform.machine(),
    }
    for relative in sorted(dependencies.modules):
        components[f"module:{relative}"] = _sha256((package_root / relative).read_bytes())
    for distribution, version in package_versions(dependencies.third_party).items():
        components[f"package:{distribution}"] = version
    return components


def digest(components: Mapping[str, str]) -> str:
    return _sha256(json.dumps(dict(sorted(components.items()))))


def explain_change(old: Mapping[str, str], new: Mapping[str, str], *, limit: int = 3) -> str:
    """Why a key changed, in a few words: ``handbook/attention.py changed, torch 2.13 -> 2.14``."""
    reasons = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        kind, _, what = name.partition(":")
        if kind == "package":
            reasons.append(f"{what} {before or 'absent'} -> {after or 'absent'}")
        elif kind == "module":
            verb = "changed" if before and after else ("now used" if after else "no longer used")
            reasons.append(f"{what} {verb}")
        elif name == "mode":
            reasons.append("mode or parameters changed")
        else:
            reasons.append(f"{name} changed")
    if len(reasons) > limit:
        reasons = [*reasons[:limit], f"{len(reasons) - limit} more"]
    return ", ".join(reasons) or "nothing changed"


# Entries ---------------------------------------------------------------------------------------


@dataclass
class Entry:
    """What the cache remembers of one executed notebook.

    ``claims`` maps each claim id the run recorded to the SHA-256 of its record file, and
    ``executed_sha256`` is the hash of the executed copy, so a hit also requires that the files
    the run left are still the ones it wrote.
    """

    notebook: str
    key: str
    components: dict[str, str]
    executed: str
    executed_sha256: str
    claims: dict[str, str]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n"


def file_sha256(path: Path) -> str:
    return _sha256(Path(path).read_bytes())


def entry_path(cache_dir: Path, notebook: Path) -> Path:
    return Path(cache_dir) / f"{Path(notebook).stem}.json"


@dataclass(frozen=True)
class UnreadableEntry:
    """An entry file that is there but cannot be trusted (cut short by an interrupted write,
    edited, not an entry at all): the chapter runs again, and ``problem`` says why.

    It names no claims: nothing it says can be believed, so only the records the chapter's
    stem owns in the ledger are replaced.
    """

    path: Path
    problem: str

    @property
    def claims(self) -> dict[str, str]:
        return {}


_SHA256 = re.compile(r"[0-9a-f]{64}")
#: A claim id names a file of the ledger (``C23`` -> ``C23.json``): no folder, no dot.
_CLAIM_ID = re.compile(r"[A-Za-z0-9_-]+")


def _entry_problem(data: object) -> str | None:
    """What makes ``data`` (a parsed entry file) not an :class:`Entry`, or None when it is one."""
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__} where an object was expected"
    fields = set(Entry.__dataclass_fields__)
    if missing := sorted(fields - set(data)):
        return f"lacks {', '.join(missing)}"
    if unknown := sorted(set(data) - fields):
        return f"has unknown fields {', '.join(map(repr, unknown))}"
    for name in ("notebook", "key", "executed", "executed_sha256"):
        if not isinstance(data[name], str):
            return f"has a {name} that is not a string"
    for name in ("components", "claims"):
        value = data[name]
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(item, str) for key, item in value.items()
        ):
            return f"has {name} that are not a mapping of strings to strings"
    if isinstance(data["seconds"], bool) or not isinstance(data["seconds"], int | float):
        return "has seconds that are not a number"
    for name in ("key", "executed_sha256"):
        if not _SHA256.fullmatch(data[name]):
            return f"has a {name} that is not a SHA-256"
    for claim_id, sha256 in data["claims"].items():
        if not _CLAIM_ID.fullmatch(claim_id):
            return f"names a claim {claim_id!r} that is not a ledger record"
        if not _SHA256.fullmatch(sha256):
            return f"has a hash of claim {claim_id} that is not a SHA-256"
    return None


def load_entry(cache_dir: Path, notebook: Path) -> Entry | UnreadableEntry | None:
    """The stored entry of ``notebook``; None if there is none; an :class:`UnreadableEntry` if
    its file cannot be read or is not a whole, well-formed entry."""
    path = entry_path(cache_dir, notebook)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as error:
        return UnreadableEntry(path, f"cannot be read ({error.strerror or error})")
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        return UnreadableEntry(path, f"is not valid JSON ({error})")
    problem = _entry_problem(data)
    return UnreadableEntry(path, problem) if problem else Entry(**data)


def save_entry(cache_dir: Path, entry: Entry) -> Path:
    """Write ``entry`` whole or not at all: an interrupted run never leaves half an entry."""
    path = entry_path(cache_dir, Path(entry.notebook))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(entry.to_json(), encoding="utf-8")
    partial.replace(path)
    return path


def reason_to_run(
    entry: Entry | UnreadableEntry | None,
    components: Mapping[str, str],
    executed: Path,
    records: Mapping[str, str],
) -> str | None:
    """None when ``entry`` can be reused for a notebook whose key has these ``components``;
    otherwise why it must run again, in a few words. ``records`` are the ledger's records as
    they are now, ``{claim id: SHA-256 of the record}`` (:func:`handbook.claims.record_digests`)."""
    if entry is None:
        return "not executed yet"
    if isinstance(entry, UnreadableEntry):
        return f"its cache entry {entry.path.name} {entry.problem}"
    if entry.key != digest(components):
        return explain_change(entry.components, components)
    if not executed.is_file():
        return "its executed copy is missing"
    if file_sha256(executed) != entry.executed_sha256:
        return "its executed copy was changed"
    for claim_id, sha256 in entry.claims.items():
        if claim_id not in records:
            return f"its ledger record {claim_id} is missing"
        if records[claim_id] != sha256:
            return f"its ledger record {claim_id} was changed"
    return None


# Lookup and commit: the cache's two steps around an execution ------------------------------------


@dataclass(frozen=True)
class Lookup:
    """The cache's answer for one notebook before it runs. ``reason`` is None on a hit (reuse the
    executed copy; ``entry.seconds`` says how long its last run took); otherwise it says why the
    notebook runs, and ``components`` go to :func:`commit` once it has run."""

    components: dict[str, str]
    entry: Entry | UnreadableEntry | None
    reason: str | None

    @property
    def hit(self) -> bool:
        return self.reason is None


def lookup(
    cache_dir: Path,
    notebook: Path,
    *,
    environment: Mapping[str, str],
    package_root: Path,
    executed: Path,
    records: Mapping[str, str],
    force: bool = False,
) -> Lookup:
    """Compute ``notebook``'s key and compare it with the stored entry: a hit when nothing that
    decides its outputs changed and the files its last run left are intact (``executed``, the
    executed copy; ``records``, the ledger's records as :func:`reason_to_run` takes them).
    ``force`` makes it a miss ("--force"). On a miss the stored entry is removed, so that an
    interrupted run never leaves an entry vouching for files it did not write."""
    components = key_components(notebook, environment=environment, package_root=package_root)
    entry = load_entry(cache_dir, notebook)
    reason = "--force" if force else reason_to_run(entry, components, executed, records)
    if reason is not None:
        entry_path(cache_dir, notebook).unlink(missing_ok=True)
    return Lookup(components, entry, reason)


def commit(
    cache_dir: Path,
    notebook: Path,
    components: Mapping[str, str],
    *,
    executed: Path,
    records: Mapping[str, str],
    seconds: float,
) -> Path:
    """After a successful run: store the entry that lets the next :func:`lookup` reuse it, with
    the hashes of what the run left (the executed copy, and ``records``: the digests of the
    ledger records this notebook wrote). Returns the entry's path."""
    return save_entry(
        cache_dir,
        Entry(
            notebook=str(notebook),
            key=digest(components),
            components=dict(components),
            executed=str(executed),
            executed_sha256=file_sha256(executed),
            claims=dict(records),
            seconds=round(seconds, 1),
        ),
    )
