"""The shape of lib/, read from the source with ast (CPython, nothing imported):

- no import cycle between our modules, counting imports inside functions too (a lazy import
  that closes a circle is still a circle: it only hides it until run time);
- no module reaching into another module's `_private` names: neither `from m import _x` nor
  `obj._x` where `_x` is not a name the module itself defines (`self._x` is an object's own
  member, inherited ones included).
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "lib"


def modules(root: Path) -> dict[str, ast.Module]:
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            out[".".join(parts)] = ast.parse(f.read_text(), str(f))
    return out


def _target(mod: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".")[: -node.level]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mods: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module -> the lib modules it imports (anywhere in it). Importing `pkg.sub` counts as
    importing `pkg.sub`, not the package itself."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, tree in mods.items():
        for n in ast.walk(tree):
            names = []
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                t = _target(m, n)
                names = [t + "." + a.name if t + "." + a.name in mods else t for a in n.names]
            for name in names:
                if name in mods and name != m:
                    edges[m].add(name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                found.append(path[path.index(t) :] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return found


def _own_names(tree: ast.Module) -> set[str]:
    """Names a module defines: functions, classes, assignments, attributes set on anything."""
    own = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(n.name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            own.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            own.add(n.attr)
    return own


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# Modules that are another's code moved out of its class to save heap, not collaborators: the
# wrapper's connect path is imported while connecting and dropped once connected; the client's
# cold paths (connect, subscribe, slow reads and writes) are imported for one call. They may use
# the private names of the module they are part of, and nothing else's.
PARTS = {
    "mqtt.rconnect": "mqtt.robust",
    "mqtt.rcold": "mqtt.robust",
    "mqtt.spillrec": "mqtt.robust",
    "mqtt.session": "mqtt.client",
}


def private_access(mods: dict[str, ast.Module]) -> list[str]:
    bad = []
    for m, tree in mods.items():
        own = _own_names(tree)
        root = PARTS.get(m, m)  # a module and its parts share their names
        for x in mods:
            if x != m and (x == root or PARTS.get(x) == root):
                own = own | _own_names(mods[x])
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and _target(m, n) in mods:
                for a in n.names:
                    if _private(a.name):
                        bad.append("%s:%d imports %s from %s" % (m, n.lineno, a.name, n.module))
            elif (
                isinstance(n, ast.Attribute)
                and _private(n.attr)
                and n.attr not in own
                # an object's own (maybe inherited) members: a subclass may use its base's
                and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))
            ):
                bad.append("%s:%d uses .%s, not a name of its own" % (m, n.lineno, n.attr))
    return bad


def test_no_import_cycle_in_lib():
    found = cycles(imports(modules(LIB)))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_module_reaches_into_another_modules_private_names():
    bad = private_access(modules(LIB))
    assert not bad, "\n".join(bad)


def test_the_checks_see_a_cycle_and_a_private_reach(tmp_path):
    # the checks themselves, on a two-module package made for the purpose
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f(n):\n    from p import b\n    return n._hidden\n")
    (pkg / "b.py").write_text("from p.a import f\nfrom p.a import _g\n")
    mods = modules(tmp_path)
    assert cycles(imports(mods)) == [["p.a", "p.b", "p.a"]]
    assert private_access(mods) == [
        "p.a:3 uses ._hidden, not a name of its own",
        "p.b:2 imports _g from p.a",
    ]
