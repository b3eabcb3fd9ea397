"""The layer rules of docs/architecture.md, checked on the source: plain packages never import
Dagster or the CLI, no two modules import each other (directly or round a longer cycle), and
only the one isolated module writes environment variables (plus a script's own
``if __name__ == "__main__"`` block), and the plain packages read settings from the
environment in one place only (``Settings.from_env``, called by the entry points)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ("ingest", "warehouse", "send_jobs", "experiments", "targeting", "simulator")
OURS = (*PLAIN, "orchestration", "benchmarks")
ENV_WRITER = "warehouse/tool_env.py"  # dbt's profile, Dagster's and GX's switches
FORBIDDEN_IN_PLAIN = ("dagster", "dagster_dbt", "dagster_duckdb", "orchestration")
# the plain modules that may read os.environ: the settings (read once, at an entry point),
# the isolated writer, and the one that starts dbt (a child inherits the environment)
ENV_READERS = ("warehouse/settings.py", ENV_WRITER, "warehouse/engines.py")
# a statement that changes a mart: only dbt builds them
MART_WRITE = re.compile(
    r"\b(INSERT\s+(OR\s+REPLACE\s+)?INTO|UPDATE|DELETE\s+FROM|CREATE\s+(OR\s+REPLACE\s+)?"
    r"TABLE|ALTER\s+TABLE|DROP\s+TABLE|TRUNCATE)\s+(TABLE\s+)?marts\.",
    re.IGNORECASE,
)
ENV_METHODS = ("setdefault", "update", "pop", "clear", "popitem", "__setitem__", "__delitem__")


def modules(root: Path, packages=OURS) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports (at any level, lazy imports included), resolved to a
    module of ours where it is one, else the top-level name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


def plain_package_violations(root: Path, packages=PLAIN) -> list[str]:
    known = modules(root, packages)
    return sorted(
        f"{name} imports {target}"
        for name, path in known.items()
        for target in imports(path, name, known)
        if target.split(".")[0] in FORBIDDEN_IN_PLAIN
    )


def import_cycles(root: Path, packages=OURS) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), ignoring a package's
    ``__init__`` re-exporting from its own submodules."""
    known = modules(root, packages)
    graph = {
        name: {t for t in imports(path, name, known)
               if t in known and t != name and not t.startswith(name + ".")}
        for name, path in known.items()
    }  # fmt: skip
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")  # fmt: skip


def _main_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if __name__ == "__main__":`` (a script's entry point)."""
    inside = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Compare) and getattr(test.left, "id", None) == "__name__":
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def env_writes(root: Path, packages=OURS) -> list[str]:
    found = []
    for name, path in modules(root, packages).items():
        if path.relative_to(root).as_posix() == ENV_WRITER:
            continue
        tree = ast.parse(path.read_text(), str(path))
        entry = _main_blocks(tree)
        for node in ast.walk(tree):
            if id(node) in entry:
                continue
            targets = []
            if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = node.targets if hasattr(node, "targets") else [node.target]
            written = any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets)
            called = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (_is_environ(node.func.value) and node.func.attr in ENV_METHODS)
                or (isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
                    and node.func.attr in ("putenv", "unsetenv"))
            )  # fmt: skip
            if written or called:
                found.append(f"{name}:{node.lineno}")
    return sorted(found)


def env_reads(root: Path, packages=PLAIN) -> list[str]:
    """Every use of ``os.environ`` or ``os.getenv`` in a plain module other than the readers."""
    found = []
    for name, path in modules(root, packages).items():
        if path.relative_to(root).as_posix() in ENV_READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            getenv = isinstance(node, ast.Attribute) and node.attr == "getenv"
            if _is_environ(node) or getenv:
                found.append(f"{name}:{node.lineno}")
    return sorted(found)


def mart_writes(root: Path, packages=PLAIN) -> list[str]:
    """Every string in a plain module that changes a ``marts.*`` table."""
    found = []
    for name, path in modules(root, packages).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and MART_WRITE.search(text):
                found.append(f"{name}:{node.lineno}")
    return sorted(found)


def test_plain_packages_import_neither_dagster_nor_the_cli():
    assert plain_package_violations(ROOT) == []


def test_no_two_modules_import_each_other():
    assert import_cycles(ROOT) == []


def test_only_the_isolated_module_writes_the_environment():
    assert env_writes(ROOT) == []


def test_plain_packages_read_the_environment_only_through_the_settings():
    assert env_reads(ROOT) == []


def test_only_dbt_writes_the_marts():
    """The simulator's worlds and responses are landing files; send jobs and experiments
    write their own schemas."""
    assert mart_writes(ROOT) == []


def test_the_checks_catch_each_kind_of_breach(tmp_path):
    """The checks above on a small tree that breaks each rule once."""
    (tmp_path / "send_jobs").mkdir()
    (tmp_path / "orchestration").mkdir()
    (tmp_path / "send_jobs" / "__init__.py").write_text("")
    (tmp_path / "orchestration" / "__init__.py").write_text("")
    (tmp_path / "send_jobs" / "a.py").write_text(
        "import os\nfrom send_jobs import b\n\ndef f():\n    import dagster\n"
        "    os.environ['X'] = '1'\n"
    )
    (tmp_path / "send_jobs" / "b.py").write_text(
        "from . import a\nimport os\nPORT = os.getenv('P')\n"
        "SQL = 'UPDATE marts.dim_customers SET x = 1'\n"
        "READ = 'SELECT * FROM marts.dim_customers'\n"
        "def g(con):\n    con.execute(f'insert into  marts.fct_orders SELECT {PORT}')\n"
    )
    (tmp_path / "orchestration" / "c.py").write_text(
        "import os\nos.environ.setdefault('Y', '1')\n"
        "if __name__ == '__main__':\n    os.environ['Z'] = '1'\n"
    )
    assert plain_package_violations(tmp_path, ("send_jobs",)) == ["send_jobs.a imports dagster"]
    assert import_cycles(tmp_path, ("send_jobs", "orchestration")) == [
        ["send_jobs.a", "send_jobs.b"]
    ]
    assert env_writes(tmp_path, ("send_jobs", "orchestration")) == [
        "orchestration.c:2", "send_jobs.a:6"
    ]  # fmt: skip
    assert env_reads(tmp_path, ("send_jobs",)) == ["send_jobs.a:6", "send_jobs.b:3"]
    assert mart_writes(tmp_path, ("send_jobs",)) == ["send_jobs.b:4", "send_jobs.b:7"]
