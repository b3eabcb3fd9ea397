"""Message templates: Jinja2 syntax, parsed by a ``SandboxedEnvironment`` with
``StrictUndefined``, restricted to literal text and ``{{ field }}`` substitutions.

Why so narrow: rendering runs set-based in DuckDB (one SQL ``concat`` per variant, 250k+
messages/s) rather than one Jinja call per recipient, and values never pass through a template
engine, so a name such as ``{{ 7*7 }}`` is printed as written. Conditional wording is a
variant with a ``when`` rule, not an ``{% if %}``. A compiled template keeps Jinja's own
rendering, used to check the SQL rendering on samples (`render_python`).
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[tuple[str, str], ...]  # ("text", literal) or ("field", name)

    @property
    def fields(self) -> set[str]:
        return {value for kind, value in self.parts if kind == "field"}


def compile_template(source: str) -> Template:
    if not source.strip():
        raise TemplateError("is empty")
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"Jinja syntax error on line {exc.lineno}: {exc.message}") from exc
    parts: list[tuple[str, str]] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            raise TemplateError(
                f"only text and {{{{ field }}}} are allowed, not {type(node).__name__} "
                "blocks; use a variant with `when` for conditional wording"
            )
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(("text", child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                parts.append(("field", child.name))
            else:
                raise TemplateError(
                    f"only plain {{{{ field }}}} substitutions are allowed, not "
                    f"{type(child).__name__} (filters, attributes and expressions are refused)"
                )
    return Template(source, tuple(parts))


def render_python(template: Template, values: dict[str, str]) -> str:
    """Jinja's own rendering (sandboxed, strict): the reference the SQL rendering matches."""
    return ENV.from_string(template.source).render(**values)


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def render_sql(template: Template, field_sql: dict[str, str]) -> str:
    """A DuckDB expression concatenating the template's literals and field expressions."""
    pieces = [
        sql_literal(value) if kind == "text" else field_sql[value] for kind, value in template.parts
    ]
    return "concat(" + ", ".join(pieces) + ")" if pieces else "''"
