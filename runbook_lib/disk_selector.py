"""Talos ``diskSelector.match`` CEL expressions: check them early, evaluate them faithfully.

Talos compiles the selector against its ``DiskLocator`` environment
(``pkg/machinery/cel/celenv/celenv.go``) when the machine config is applied, and
rejects it with ``disk selector is invalid: ...`` if it does not type-check or
does not return a bool. We want that failure while the parameter file is being
validated, not halfway through a rollout, so :func:`check_disk_selector` parses
the expression with cel-python and walks the syntax tree for the mistakes cel-go's
type checker would reject: unknown variables, unknown ``disk`` fields, unknown
functions, ``uint`` mixed with ``int`` (sizes are ``uint``, so ``120 * GB`` is an
error and ``120u * GB`` is right) and a non-bool result.

The checker is deliberately conservative: where it cannot tell a type it assumes
anything goes, so it never rejects an expression Talos would accept.

:class:`DiskSelector` evaluates an expression against one disk, with the same
variables, ``uint`` size constants and ``glob(pattern, string)`` function Talos
provides. Parameter validation and the lab's Talos model both use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import celpy
import celpy.celparser
import lark
from celpy import celtypes

__all__ = [
    "DISK_FIELDS",
    "SIZE_CONSTANTS",
    "DiskSelector",
    "DiskSelectorError",
    "check_disk_selector",
    "evaluate_disk_selector",
    "go_glob",
]

# DiskSpec fields (yaml names) and their CEL types.
DISK_FIELDS: Mapping[str, str] = {
    "dev_path": "string",
    "size": "uint",
    "pretty_size": "string",
    "io_size": "uint",
    "sector_size": "uint",
    "readonly": "bool",
    "cdrom": "bool",
    "model": "string",
    "serial": "string",
    "modalias": "string",
    "wwid": "string",
    "uuid": "string",
    "bus_path": "string",
    "sub_system": "string",
    "transport": "string",
    "rotational": "bool",
    "secondary_disks": "list",
    "symlinks": "list",
}

# celenv.go unitMultipliers: uint constants for IEC and metric units.
SIZE_CONSTANTS: Mapping[str, int] = {
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "PiB": 1024**5,
    "EiB": 1024**6,
    "kB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "PB": 1000**5,
    "EB": 1000**6,
}

_DYN = "dyn"
_NUMERIC = frozenset({"int", "uint", "double"})

# Global functions of the CEL standard library plus Talos's glob, with result types.
_GLOBAL_FUNCTIONS: Mapping[str, str] = {
    "glob": "bool",
    "has": "bool",
    "size": "int",
    "int": "int",
    "uint": "uint",
    "double": "double",
    "string": "string",
    "bytes": "bytes",
    "bool": "bool",
    "matches": "bool",
    "dyn": _DYN,
    "type": _DYN,
    "duration": _DYN,
    "timestamp": _DYN,
}

# Receiver-style functions of the standard library (Talos adds no extension library,
# so e.g. ``lowerAscii`` does not exist there).
_METHODS: Mapping[str, str] = {
    "startsWith": "bool",
    "endsWith": "bool",
    "contains": "bool",
    "matches": "bool",
    "size": "int",
    **{
        name: "int"
        for name in (
            "getDate",
            "getDayOfMonth",
            "getDayOfWeek",
            "getDayOfYear",
            "getFullYear",
            "getMonth",
            "getHours",
            "getMilliseconds",
            "getMinutes",
            "getSeconds",
        )
    },
}

# Comprehension macros: the first argument names a variable bound in the others.
_MACROS: Mapping[str, str] = {
    "all": "bool",
    "exists": "bool",
    "exists_one": "bool",
    "map": "list",
    "filter": "list",
}

_LITERAL_TYPES: Mapping[str, str] = {
    "INT_LIT": "int",
    "UINT_LIT": "uint",
    "FLOAT_LIT": "double",
    "STRING_LIT": "string",
    "MLSTRING_LIT": "string",
    "BYTES_LIT": "bytes",
    "BOOL_LIT": "bool",
    "NULL_LIT": "null",
}

_OPERATORS: Mapping[str, str] = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


class DiskSelectorError(ValueError):
    """A disk selector does not compile, or failed while being evaluated.

    ``problems`` lists each mistake found, as short sentences.
    """

    def __init__(self, expression: str, problems: Sequence[str]) -> None:
        self.expression = expression
        self.problems = list(problems)
        super().__init__(f"disk selector {expression!r}: " + "; ".join(self.problems))


def check_disk_selector(expression: str) -> list[str]:
    """Return the problems Talos would find compiling ``expression`` (empty when fine)."""
    try:
        tree = _parse(expression)
    except DiskSelectorError as exc:
        return exc.problems
    return _Checker().check(tree)


def _load_cel_parser() -> None:
    """cel-python's parser, with lark's grammar cache (``cache=True``: a file in the temp folder).

    cel-python builds its LALR tables on first use in every process (0.3 s, in every kernel and ``runbook``
    process); from lark's cache they load in 0.03 s. The options are cel-python 0.5's own (``CELParser.__init__``),
    and its class-level ``CEL_PARSER`` is where it keeps the parser. Any other cel-python builds its own.
    """
    parser = celpy.celparser.CELParser
    grammar = Path(celpy.celparser.__file__).with_name("cel.lark")
    if getattr(parser, "CEL_PARSER", False) is not None or not grammar.is_file():
        return
    parser.CEL_PARSER = lark.Lark(grammar.read_text(), parser="lalr", start="expr", debug=True, g_regex_flags=re.M,
                                  lexer_callbacks={"IDENT": parser.ambiguous_literals}, propagate_positions=True,
                                  maybe_placeholders=False, priority="invert", tree_class=lark.Tree, cache=True)


def _parse(expression: str) -> lark.Tree:
    """Parse with cel-python, turning its parser error into one short sentence."""
    if not isinstance(expression, str) or not expression.strip():
        raise DiskSelectorError(str(expression), ["not a valid CEL expression: the expression is empty"])
    _load_cel_parser()
    try:
        return celpy.Environment().compile(expression)
    except celpy.CELParseError as exc:
        raise DiskSelectorError(expression, [f"not a valid CEL expression: {_describe(exc)}"]) from None


def _describe(exc: celpy.CELParseError) -> str:
    """A one-line reason from the lark error cel-python wrapped (it keeps only a caret picture)."""
    cause = exc.__context__
    where = f"line {exc.line}, column {exc.column}" if (exc.line or 1) > 1 else f"column {exc.column}"
    if isinstance(cause, lark.exceptions.UnexpectedCharacters):
        char = cause.char
        what = "an unterminated string" if char in "'\"" else f"unexpected character {char!r}"
        return f"{what} at {where}"
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        if cause.token.type == "$END":
            return f"unexpected end of expression at {where}"
        return f"unexpected {str(cause.token)!r} at {where}"
    return f"syntax error at {where}"


def _kids(tree: lark.Tree) -> list[Any]:
    """Children without the ``None`` placeholders lark may leave for optional parts."""
    return [child for child in tree.children if child is not None]


def _only_ident(node: Any) -> str | None:
    """The name if ``node`` is nothing but a bare identifier (``x`` in ``exists(x, ...)``)."""
    while isinstance(node, lark.Tree):
        kids = _kids(node)
        if node.data == "ident" and kids:
            return str(kids[0])
        if len(kids) != 1:
            return None
        node = kids[0]
    return None


def _is_field_selection(node: Any) -> bool:
    """True if ``node`` is ``x.field`` (what ``has()`` needs)."""
    while isinstance(node, lark.Tree):
        if node.data == "member_dot":
            return True
        kids = _kids(node)
        if len(kids) != 1:
            return False
        node = kids[0]
    return False


class _Checker:
    """A small type inference over cel-python's parse tree, reporting what cel-go would reject."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, tree: lark.Tree) -> list[str]:
        result = self.type_of(tree, frozenset())
        if result not in (_DYN, "bool"):
            self.problems.append(f"the expression must evaluate to bool, not {result}")
        return list(dict.fromkeys(self.problems))

    def type_of(self, node: Any, bound: frozenset[str]) -> str:
        if not isinstance(node, lark.Tree):
            return _DYN
        handler = getattr(self, f"_t_{node.data}", None)
        if handler is not None:
            return handler(node, bound)
        for child in _kids(node):
            self.type_of(child, bound)
        return _DYN

    def _single(self, node: lark.Tree, bound: frozenset[str]) -> str:
        kids = _kids(node)
        return self.type_of(kids[0], bound) if len(kids) == 1 else self._walk(kids, bound)

    def _walk(self, kids: list[Any], bound: frozenset[str]) -> str:
        for child in kids:
            self.type_of(child, bound)
        return _DYN

    _t_member = _single
    _t_primary = _single
    _t_paren_expr = _single

    def _expect_bool(self, kind: str, what: str) -> None:
        if kind not in (_DYN, "bool"):
            self.problems.append(f"{what} must be bool, not {kind}")

    def _t_expr(self, node: lark.Tree, bound: frozenset[str]) -> str:
        kids = _kids(node)
        if len(kids) == 1:
            return self.type_of(kids[0], bound)
        self._expect_bool(self.type_of(kids[0], bound), "the condition of '? :'")
        branches = {self.type_of(kid, bound) for kid in kids[1:]}
        return branches.pop() if len(branches) == 1 else _DYN

    def _logical(self, node: lark.Tree, bound: frozenset[str], op: str) -> str:
        kids = _kids(node)
        if len(kids) == 1:
            return self.type_of(kids[0], bound)
        for kid in kids:
            self._expect_bool(self.type_of(kid, bound), f"each side of '{op}'")
        return "bool"

    def _t_conditionalor(self, node: lark.Tree, bound: frozenset[str]) -> str:
        return self._logical(node, bound, "||")

    def _t_conditionaland(self, node: lark.Tree, bound: frozenset[str]) -> str:
        return self._logical(node, bound, "&&")

    def _binary(self, node: lark.Tree, bound: frozenset[str]) -> str:
        """``relation``/``addition``/``multiplication``: ``[op_tree(left), right]`` or ``[operand]``."""
        kids = _kids(node)
        if len(kids) == 1:
            return self.type_of(kids[0], bound)
        op_tree, right = kids[0], kids[-1]
        op = _OPERATORS.get(op_tree.data, op_tree.data)
        left_t = self.type_of(_kids(op_tree)[0], bound)
        right_t = self.type_of(right, bound)
        if op == "in":
            if right_t not in (_DYN, "list", "map"):
                self.problems.append(f"'in' needs a list or a map on its right, not {right_t}")
            return "bool"
        self._check_operands(op, left_t, right_t)
        if op in ("<", "<=", ">", ">=", "==", "!="):
            return "bool"
        return left_t if left_t == right_t else _DYN

    _t_relation = _binary
    _t_addition = _binary
    _t_multiplication = _binary

    def _check_operands(self, op: str, left: str, right: str) -> None:
        if _DYN in (left, right):
            return
        if left != right:
            message = f"'{op}' cannot combine {left} with {right}"
            if {left, right} == {"int", "uint"}:
                message += (
                    "; disk sizes and the size constants are uint in Talos, so write numbers with a u suffix "
                    "(for example 120u * GB)"
                )
            self.problems.append(message)
            return
        allowed = _NUMERIC | {"string", "bytes", "list"} if op == "+" else _NUMERIC
        if op in ("-", "*", "/", "%") and left not in allowed:
            self.problems.append(f"'{op}' does not apply to {left}")

    def _t_unary(self, node: lark.Tree, bound: frozenset[str]) -> str:
        kids = _kids(node)
        if len(kids) == 1:
            return self.type_of(kids[0], bound)
        op, operand = kids[0], kids[-1]
        kind = self.type_of(operand, bound)
        if isinstance(op, lark.Tree) and op.data == "unary_not":
            self._expect_bool(kind, "the operand of '!'")
            return "bool"
        if kind == "uint":
            self.problems.append("a uint cannot be negated")
        elif kind not in (_DYN, "int", "double"):
            self.problems.append(f"'-' does not apply to {kind}")
        return kind

    def _t_member_dot(self, node: lark.Tree, bound: frozenset[str]) -> str:
        target, name = _kids(node)[0], str(_kids(node)[-1])
        if self.type_of(target, bound) != "disk":
            return _DYN
        if name not in DISK_FIELDS:
            self.problems.append(f"disk has no field {name!r} (fields: {', '.join(DISK_FIELDS)})")
            return _DYN
        return DISK_FIELDS[name]

    def _t_member_dot_arg(self, node: lark.Tree, bound: frozenset[str]) -> str:
        kids = _kids(node)
        target, name = kids[0], str(kids[1])
        args = _kids(kids[2]) if len(kids) > 2 else []
        target_t = self.type_of(target, bound)
        if name in _MACROS:
            var = _only_ident(args[0]) if args else None
            if var is None or len(args) < 2:
                self.problems.append(
                    f"{name}() needs a variable name and an expression, like {name}(x, x != '')"
                )
                return self._walk(args[1:], bound)
            if target_t not in (_DYN, "list", "map"):
                self.problems.append(f"{name}() needs a list or a map, not {target_t}")
            inner = bound | {var}
            for arg in args[1:]:
                self.type_of(arg, inner)
            return _MACROS[name]
        self._walk(args, bound)
        if name not in _METHODS:
            self.problems.append(f"unknown function {name!r}")
            return _DYN
        return _METHODS[name]

    def _t_member_index(self, node: lark.Tree, bound: frozenset[str]) -> str:
        return self._walk(_kids(node), bound)

    def _t_ident(self, node: lark.Tree, bound: frozenset[str]) -> str:
        name = str(_kids(node)[0])
        if name in bound:
            return _DYN
        if name == "disk":
            return "disk"
        if name == "system_disk":
            return "bool"
        if name in SIZE_CONSTANTS:
            return "uint"
        self.problems.append(
            f"unknown variable {name!r} (Talos provides disk, system_disk and the size constants "
            + " ".join(SIZE_CONSTANTS)
            + ")"
        )
        return _DYN

    _t_dot_ident = _t_ident

    def _t_ident_arg(self, node: lark.Tree, bound: frozenset[str]) -> str:
        kids = _kids(node)
        name = str(kids[0])
        args = _kids(kids[1]) if len(kids) > 1 else []
        arg_types = [self.type_of(arg, bound) for arg in args]
        if name not in _GLOBAL_FUNCTIONS:
            self.problems.append(f"unknown function {name!r}")
            return _DYN
        if name == "glob" and (len(args) != 2 or any(t not in (_DYN, "string") for t in arg_types)):
            self.problems.append("glob() takes two strings: glob(pattern, string)")
        if name == "has" and (len(args) != 1 or not _is_field_selection(args[0])):
            self.problems.append("has() takes one field selection, like has(disk.model)")
        return _GLOBAL_FUNCTIONS[name]

    _t_dot_ident_arg = _t_ident_arg

    def _t_list_lit(self, node: lark.Tree, bound: frozenset[str]) -> str:
        self._walk(_kids(node), bound)
        return "list"

    def _t_map_lit(self, node: lark.Tree, bound: frozenset[str]) -> str:
        self._walk(_kids(node), bound)
        return "map"

    def _t_literal(self, node: lark.Tree, bound: frozenset[str]) -> str:
        kids = _kids(node)
        token = kids[0] if kids else None
        return _LITERAL_TYPES.get(getattr(token, "type", ""), _DYN)


def go_glob(pattern: str, subject: str) -> bool:
    """Match like github.com/ryanuber/go-glob, the ``glob()`` Talos registers.

    Only ``*`` is special and it matches any run of characters, ``/`` included
    (unlike shell globs or Python's fnmatch, which also treat ``?`` and ``[`` specially).
    """
    if pattern == "":
        return subject == ""
    if pattern == "*":
        return True
    parts = pattern.split("*")
    if len(parts) == 1:
        return subject == pattern
    rest = subject
    for i, part in enumerate(parts[:-1]):
        idx = rest.find(part)
        if (i == 0 and not pattern.startswith("*") and idx != 0) or idx < 0:
            return False
        rest = rest[idx + len(part) :]
    return pattern.endswith("*") or rest.endswith(parts[-1])


def _glob_function(pattern: Any, subject: Any) -> celtypes.BoolType:
    return celtypes.BoolType(go_glob(str(pattern), str(subject)))


def _cel_value(kind: str, value: Any) -> Any:
    """Convert one disk field to its CEL type (proto3 defaults when missing)."""
    if kind == "uint":
        return celtypes.UintType(int(value or 0))
    if kind == "bool":
        return celtypes.BoolType(bool(value))
    if kind == "list":
        return celtypes.ListType([celtypes.StringType(str(item)) for item in (value or [])])
    return celtypes.StringType("" if value is None else str(value))


class DiskSelector:
    """A checked selector, compiled once and evaluated against many disks.

    Raises :class:`DiskSelectorError` at construction if Talos would reject the
    expression, so an evaluation never hides a compile problem.
    """

    def __init__(self, expression: str) -> None:
        tree = _parse(expression)
        problems = _Checker().check(tree)
        if problems:
            raise DiskSelectorError(expression, problems)
        self.expression = expression
        env = celpy.Environment()
        self._program = env.program(tree, functions={"glob": _glob_function})

    def matches(self, disk: Mapping[str, Any], system_disk: bool) -> bool:
        """Evaluate against ``disk`` (DiskSpec yaml field names; missing fields read as proto3 defaults).

        Keys of ``disk`` that are not DiskSpec fields are ignored, so a caller can
        pass a whole resource spec.
        """
        cel_disk = celtypes.MapType(
            {
                celtypes.StringType(field): _cel_value(kind, disk.get(field))
                for field, kind in DISK_FIELDS.items()
            }
        )
        activation: dict[str, Any] = {
            "disk": cel_disk,
            "system_disk": celtypes.BoolType(bool(system_disk)),
            **{name: celtypes.UintType(value) for name, value in SIZE_CONSTANTS.items()},
        }
        try:
            result = self._program.evaluate(activation)
        except celpy.CELEvalError as exc:
            raise DiskSelectorError(self.expression, [f"evaluation failed: {exc.args[0]}"]) from None
        if not isinstance(result, celtypes.BoolType):
            detail = result.args[0] if isinstance(result, celpy.CELEvalError) else type(result).__name__
            raise DiskSelectorError(self.expression, [f"evaluation failed: {detail}"])
        return bool(result)

    def __repr__(self) -> str:
        return f"DiskSelector({self.expression!r})"


def evaluate_disk_selector(expression: str, disk: Mapping[str, Any], system_disk: bool) -> bool:
    """Does ``disk`` match ``expression``? One-shot form of :class:`DiskSelector`."""
    return DiskSelector(expression).matches(disk, system_disk)
