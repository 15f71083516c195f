"""Reading PromQL without a parser: the metric names an expression reads, the functions around a
position, and a dashboard query with Grafana's variables filled in as Grafana would.

Used by the tests (lint, live queries) and by bench/dashboards.py; the bundle's own code builds
PromQL and never needs to read it."""

from __future__ import annotations

import re

#: Grafana's built-in and the bundle's variables, as a dashboard with every "All" chosen sends them.
ALL_CHOSEN = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "15s",
}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, keywords,
    label names in matchers or grouping clauses, or strings; plus the names a `__name__`
    matcher lists."""
    listed = {
        name for alternatives in re.findall(r'__name__\s*=~?\s*"([^"]*)"', expr) for name in alternatives.split("|")
    }
    expr = re.sub(r'"[^"]*"', '""', expr)
    expr = re.sub(r"\boffset\s+[0-9a-z]+", " ", expr)
    expr = re.sub(r"\b(?:by|on|ignoring|without|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    tokens = {
        match.group()
        for match in re.finditer(r"(?<![0-9.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr)
        if not expr[match.end() :].lstrip().startswith("(")
    }
    return (tokens | listed) - {"and", "or", "unless", "bool", "offset"}


def enclosing_functions(expr: str, position: int) -> list[str]:
    """The functions whose parentheses enclose `position`, innermost first."""
    names, depth = [], 0
    for i in range(position - 1, -1, -1):
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(":
            if depth:
                depth -= 1
                continue
            match = re.search(r"([a-zA-Z_]\w*)\s*$", expr[:i])
            names.append(match.group(1) if match else "")
    return names


def substituted(expr: str, variables: dict[str, str]) -> str:
    """`expr` with `$name` and `${name}` replaced (longest names first, so `$__range` does not
    eat `$__range_x`)."""
    values = {**ALL_CHOSEN, **{f"${k}": v for k, v in variables.items()}}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name[1:] + "}", values[name]).replace(name, values[name])
    return expr
