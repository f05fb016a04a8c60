"""Forbidden references: the library code an assignment's answers may not use, found statically.

An assignment declares, in its master's metadata (``"coursetools": {"forbidden": [...]}``), the
references its tests compare against (assignment 4: ``torch.optim.Adam``). :func:`find` reads the
submission's code, outside the sandbox and without running it, and reports each forbidden
reference that it uses, through any name: ``import torch.optim as o; o.Adam``, ``from
torch.optim import Adam as A``, ``A = torch.optim.Adam``, ``getattr(torch.optim, "Adam")``,
``torch.optim.__dict__["Adam"]``, ``importlib.import_module("torch.optim").Adam``, a class that
subclasses it. A reference is used when an expression of the submission's own code resolves to it
or to something inside it (``F.softmax`` uses ``torch.nn.functional``); importing a module is
not a use, and statements the handout itself holds (a demo cell comparing with the reference)
are not the student's. :func:`compared` names the references a test's check uses: a submission
that uses one earns nothing on those tests (:mod:`~coursetools.grading.verdicts`).

What this cannot see: a name built at run time (``getattr(torch.optim, "Ad" + "am")``, ``eval``,
``exec``, ``pickle``), code the notebook reads from a file or downloads, a reference reached
through an object (``torch.optim.Optimizer.__subclasses__()``), and copies of the reference's
source pasted into the notebook.
"""

from __future__ import annotations

import ast

Env = dict[str, "str | None"]


class _Resolver(ast.NodeVisitor):
    """Walks statements in source order, binding names to dotted references and noting uses."""

    def __init__(self, forbidden: tuple[str, ...], late: dict[str, set[str]] | None = None):
        self.forbidden, self.late = forbidden, late or {}
        self.env: Env = {}
        self.bound: dict[str, set[str]] = {}
        self.used: dict[str, int] = {}        # reference -> first cell index
        self.cell, self.flag = 0, True

    # -- resolution --------------------------------------------------------------------------
    def resolve(self, node) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return self.env[node.id]
            late = sorted(r for r in self.late.get(node.id, ()) if self._hit(r) or any(
                f.startswith(r + ".") for f in self.forbidden))  # bound later in the notebook
            return late[0] if late else None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base is None:
                return None
            return base if node.attr == "__dict__" else f"{base}.{node.attr}"
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            base = self.resolve(node.value)  # module.__dict__["name"], vars(module)["name"]
            return f"{base}.{node.slice.value}" if base else None
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                self.resolve(func) if isinstance(func, ast.Attribute) else None)
            args = node.args
            if name == "getattr" and len(args) >= 2 and isinstance(args[1], ast.Constant) \
                    and isinstance(args[1].value, str):
                base = self.resolve(args[0])
                return f"{base}.{args[1].value}" if base else None
            if name == "vars" and len(args) == 1:
                return self.resolve(args[0])
            if name in ("importlib.import_module", "__import__", "import_module") and args \
                    and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                module = args[0].value
                return module if name != "__import__" else module.split(".")[0]
        return None

    def _hit(self, ref: str | None) -> str | None:
        if not ref:
            return None
        for f in self.forbidden:
            if ref == f or ref.startswith(f + "."):
                return f
        return None

    def _use(self, node) -> None:
        hit = self._hit(self.resolve(node))
        if hit and self.flag:
            self.used.setdefault(hit, self.cell)

    def _bind(self, name: str, ref: str | None) -> None:
        self.env[name] = ref
        if ref:
            self.bound.setdefault(name, set()).add(ref)

    # -- statements --------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self._bind(alias.asname, alias.name)
            else:
                top = alias.name.split(".")[0]
                self._bind(top, top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return
        for alias in node.names:
            if alias.name == "*":
                for f in self.forbidden:  # from torch.optim import *: Adam is torch.optim.Adam
                    if f.startswith(node.module + ".") and "." not in f[len(node.module) + 1:]:
                        self._bind(f.rsplit(".", 1)[1], f)
                continue
            self._bind(alias.asname or alias.name, f"{node.module}.{alias.name}")

    def _targets(self, targets, value) -> None:
        ref = self.resolve(value)
        for target in targets:
            if isinstance(target, ast.Name):
                self._bind(target.id, ref)
            else:
                self.visit(target)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        self._targets(node.targets, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._targets([node.target], node.value)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._targets([node.target], node.value)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        for stmt in node.body:
            self.visit(stmt)
        self.env[node.name] = None

    def visit_FunctionDef(self, node) -> None:
        for expr in node.decorator_list:
            self.visit(expr)
        self.env[node.name] = None
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncFunctionDef = visit_FunctionDef

    # -- expressions -------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        self._use(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._use(node)
        self.visit(node.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self._use(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self._use(node)
        self.generic_visit(node)


def _parse(source: str) -> list[ast.stmt]:
    try:
        return ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []


def _walk(resolver: _Resolver, cells: list[tuple[int, str]], provided: set[str]) -> None:
    for index, (_, source) in enumerate(cells):
        resolver.cell = index
        for stmt in _parse(source):
            try:
                resolver.flag = ast.dump(stmt) not in provided
                resolver.visit(stmt)
            except RecursionError:  # nested past Python's limit: the sandbox decides
                continue


def find(cells: list[tuple[int, str]], autograder) -> dict[str, int]:
    """{forbidden reference: index of the first cell that uses it} for a submission's cells."""
    forbidden = tuple(getattr(autograder, "forbidden", ()) or ())
    if not forbidden:
        return {}
    provided = set(getattr(autograder, "provided", ()) or ())
    first = _Resolver(forbidden)
    _walk(first, cells, provided)  # what every name is ever bound to (for late bindings)
    second = _Resolver(forbidden, late=first.bound)
    _walk(second, cells, provided)
    return second.used


def provided_statements(handout_cells: list[str]) -> set[str]:
    """The handout's own top-level statements (as AST dumps): not the student's code."""
    return {ast.dump(stmt) for source in handout_cells for stmt in _parse(source)}


def compared(check_source: str, forbidden: tuple[str, ...]) -> set[str]:
    """The forbidden references a test's check uses (what the test compares against)."""
    resolver = _Resolver(tuple(forbidden))
    _walk(resolver, [(0, check_source)], set())
    return set(resolver.used)
