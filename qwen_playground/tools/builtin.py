"""The built-in tools: exact arithmetic, unit conversion, the date and time, search over what ships with the app,
and Python in the sandbox (only where the server allows code execution)."""

from __future__ import annotations

import ast
import functools
import operator
import re
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from ..documents import words
from . import Tool, ToolFailed

ROOT = Path(__file__).resolve().parent.parent.parent  # the app's folder: docs/ and prompts/lessons/ beside the package
MAX_EXPONENT = 10_000
MAX_DIGITS = 5_000

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: None, ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS = {"abs": abs, "min": min, "max": max, "round": lambda x, n=0: round(x, int(n))}


def calculate(expression: str) -> str:
    """Exact arithmetic on rational numbers: + - * / // % ** and parentheses, abs/min/max/round; decimals are read
    exactly (0.1 is one tenth). Parsed as Python syntax and walked node by node: nothing is evaluated as code."""
    try:
        tree = ast.parse(expression.replace("^", "**").replace("×", "*").replace("÷", "/"), mode="eval")
    except SyntaxError as e:
        raise ToolFailed(f"'{expression}' is not an arithmetic expression ({e.msg}).") from None
    value = _value(tree.body)
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator} (≈ {float(value):.12g})"


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ToolFailed("Division by zero.")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        return Fraction(_FUNCTIONS[node.func.id](*[_value(a) for a in node.args]))
    shown = ast.unparse(node) if hasattr(ast, "unparse") else type(node).__name__
    raise ToolFailed(f"'{shown}' is not arithmetic this calculator does (numbers, + - * / // % **, parentheses, abs, min, max, round).")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise ToolFailed("Only whole-number powers are exact; for a root, ask for the value and round it yourself.")
    if abs(exponent) > MAX_EXPONENT or (abs(base.numerator) > 1 and abs(exponent) * len(str(abs(base.numerator))) > MAX_DIGITS):
        raise ToolFailed(f"That power is too large to write out (more than about {MAX_DIGITS:,} digits).")
    if base == 0 and exponent < 0:
        raise ToolFailed("Division by zero.")
    return base ** int(exponent)


@functools.cache
def _units():
    import pint  # a unit registry with every SI and customary unit: loaded on the first conversion

    return pint.UnitRegistry()


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """`value` in `from_unit` as `to_unit` (pint's unit names: km, mile, degC, degF, kg, lb, liter, gallon, ...)."""
    import pint

    registry = _units()
    try:
        quantity = registry.Quantity(value, from_unit).to(to_unit)
    except pint.errors.UndefinedUnitError as e:
        raise ToolFailed(f"Unknown unit: {e}. Use names such as km, mile, degC, degF, kg, lb, liter, gallon.") from None
    except pint.errors.DimensionalityError:
        raise ToolFailed(f"{from_unit} cannot be converted to {to_unit}: they measure different things.") from None
    return f"{value:g} {from_unit} = {quantity.magnitude:.10g} {to_unit}"


def current_time(timezone: str = "UTC") -> str:
    """The date and time now in an IANA time zone (e.g. Europe/Paris, Asia/Shanghai, America/New_York)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        now = datetime.now(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolFailed(f"Unknown time zone '{timezone}'; use an IANA name such as Europe/Paris or Asia/Shanghai.") from None
    return now.strftime(f"%A %d %B %Y, %H:%M:%S ({timezone}, UTC%z)")


@functools.cache
def _passages() -> tuple[list[tuple[str, str]], object]:
    """The docs' sections and the lessons, each (where, text), with a BM25 index over their words."""
    from rank_bm25 import BM25Okapi

    passages = []
    for path in sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "prompts" / "lessons").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        sections = re.split(r"\n(?=#{1,3} )", text) if path.suffix == ".md" else [text]
        for section in sections:
            title = section.strip().splitlines()[0].lstrip("# ").strip() if section.strip() else path.stem
            passages.append((f"{path.relative_to(ROOT)} · {title}", section.strip()))
    return passages, BM25Okapi([words(text) for _, text in passages] or [[""]])


def search_docs(query: str, top_k: int = 3) -> str:
    """The passages of the app's own documentation and lessons that best match `query` (BM25 over their words)."""
    passages, index = _passages()
    asked = words(query)
    if not asked or not passages:
        raise ToolFailed("Give a few words to search for.")
    scores = index.get_scores(asked)
    best = sorted(range(len(passages)), key=lambda i: -scores[i])[:max(1, min(int(top_k), 5))]
    found = [f"[{n}] {passages[i][0]}\n{passages[i][1][:700]}" for n, i in enumerate(best, 1) if scores[i] > 0]
    return "\n\n".join(found) or f"Nothing in the docs or lessons matches '{query}'."


def run_python(code: str) -> str:
    """Run Python in the sandbox (no network, 5 s of CPU, 512 MB) and return what it printed."""
    from ..sandbox import SandboxUnavailable, run_python as sandboxed

    try:
        result = sandboxed(code)
    except SandboxUnavailable as e:
        raise ToolFailed(str(e)) from None
    output = (result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr.strip() else "")).strip()
    return f"{output or '(no output)'}\n[{result.summary()}]"


def builtin_tools(allow_code: bool) -> dict[str, Tool]:
    """The built-in tools by name; Python only where the server allows code execution."""
    string = {"type": "string"}
    tools = [
        Tool("calculator", "Exact arithmetic on an expression: + - * / // % ** and parentheses, abs, min, max, round.",
             {"type": "object", "properties": {"expression": {**string, "description": "e.g. (17 + 5) * 3 / 4"}}, "required": ["expression"],
              "additionalProperties": False}, calculate),
        Tool("convert_units", "Convert a quantity between units (length, mass, temperature, volume, speed, energy...).",
             {"type": "object", "properties": {"value": {"type": "number"}, "from_unit": {**string, "description": "e.g. mile, degF, lb"},
                                               "to_unit": {**string, "description": "e.g. km, degC, kg"}},
              "required": ["value", "from_unit", "to_unit"], "additionalProperties": False}, convert_units),
        Tool("current_time", "The current date and time in a time zone.",
             {"type": "object", "properties": {"timezone": {**string, "description": "an IANA time zone, e.g. Asia/Shanghai (default UTC)"}},
              "additionalProperties": False}, current_time),
        Tool("search_docs", "Search the Qwen Playground's own documentation and lessons; returns the best passages with where they are.",
             {"type": "object", "properties": {"query": string, "top_k": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["query"], "additionalProperties": False}, search_docs),
    ]
    if allow_code:
        tools.append(Tool("run_python", "Run a Python script in a sandbox (no network, 5 s of CPU) and return what it printed.",
                          {"type": "object", "properties": {"code": string}, "required": ["code"], "additionalProperties": False},
                          run_python, timeout_s=15.0))
    return {tool.name: tool for tool in tools}
