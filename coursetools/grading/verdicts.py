"""Verdicts: the tests' checks, run by the grader on the plain values a sandbox returned.

Nothing here runs a submission's code. The sandbox's answer is JSON (read with a size limit by
the supervisor); :func:`decode` turns it into Python values without executing anything: numbers,
strings, lists, tuples, dicts, tensors rebuilt from a dtype, a shape and raw bytes, and
:class:`Opaque` for anything else (it only carries the text of a ``repr``). Each test's check
then runs here, in the grader, and computes what is right itself (:func:`verdict`).

Feedback on a hidden test never shows a value that came from the sandbox: its message is the
check's own ``AssertionError`` text, which for hidden tests states what was expected only
(``tests/test_grading_hostile.py`` checks this with planted values), and an error raised by the
student's code is reported without its text.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field

from coursetools.grading.archive import Test

DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "uint8",
          "int8", "int16", "int32", "int64", "bool")
MAX_ELEMENTS = 10_000_000
HIDDEN_ERROR = ("your code raised an error when this hidden test called it (run the question's "
                "cells from the top to find it)")
HIDDEN_BAD_VALUE = "what your code returned is not what this hidden test expects (type or shape)"


class Opaque:
    """Something a probe returned that is not plain data: only its ``repr`` text came back."""

    def __init__(self, text: str, type_name: str):
        self.text, self.type_name = str(text)[:2000], str(type_name)[:100]

    def __repr__(self) -> str:
        return self.text


class BadValue(ValueError):
    """The sandbox's answer is not in the plain format."""


def _tensor(spec: dict):
    import torch

    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"}:
        raise BadValue("a tensor needs dtype, shape and data")
    dtype, shape, data = spec["dtype"], spec["shape"], spec["data"]
    if dtype not in DTYPES or not isinstance(shape, list) or len(shape) > 16 or not all(
            type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape):
        raise BadValue("a tensor's dtype or shape is not valid")
    count = math.prod(shape)
    torch_dtype = getattr(torch, dtype)
    raw = base64.b64decode(data.encode("ascii"), validate=True) if isinstance(data, str) else None
    itemsize = torch.empty((), dtype=torch_dtype).element_size()
    if raw is None or count > MAX_ELEMENTS or len(raw) != count * itemsize:
        raise BadValue("a tensor's data does not match its shape")
    if count == 0:
        return torch.empty(shape, dtype=torch_dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch_dtype).reshape(shape).clone()


def decode(value, depth: int = 0):
    """The plain value that :func:`coursetools.grading.worker.encode` wrote, rebuilt."""
    if depth > 40:
        raise BadValue("nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is not dict or len(value) not in (1, 2):
        raise BadValue(f"not a plain value: {type(value).__name__}")
    if set(value) == {"list"} and type(value["list"]) is list:
        return [decode(v, depth + 1) for v in value["list"]]
    if set(value) == {"tuple"} and type(value["tuple"]) is list:
        return tuple(decode(v, depth + 1) for v in value["tuple"])
    if set(value) == {"dict"} and type(value["dict"]) is list:
        out = {}
        for pair in value["dict"]:
            if type(pair) is not list or len(pair) != 2:
                raise BadValue("a dict entry is not a pair")
            key = decode(pair[0], depth + 1)
            if type(key) not in (str, int, float, bool, tuple) and key is not None:
                key = repr(key)
            out[key] = decode(pair[1], depth + 1)
        return out
    if set(value) == {"tensor"}:
        return _tensor(value["tensor"])
    if set(value) == {"repr", "type"}:
        return Opaque(value["repr"], value["type"])
    raise BadValue("not a plain value")


def _message(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass
class Context:
    """What the grader knows of a run besides the probe values: the cells, which raised, which
    were stopped, and the forbidden references the code uses (``{reference: cell index}``)."""

    cells: list = field(default_factory=list)       # (number, source) of the cells run
    failures: dict = field(default_factory=dict)    # cell index -> "SyntaxError: ..."
    skipped: list = field(default_factory=list)     # cell indexes stopped at the time limit
    forbidden: dict = field(default_factory=dict)


def _defines(source: str, name: str) -> bool:
    """Does this cell's text define ``name`` (read as text: the cell may not even parse)?"""
    n = re.escape(name)
    return re.search(rf"^\s*(?:(?:async\s+)?def|class)\s+{n}\b|^\s*{n}\s*(?::[^=]*)?=[^=]|"
                     rf"\bimport\b.*\bas\s+{n}\b|^\s*from\s+\S+\s+import\s+.*\b{n}\b",
                     source, flags=re.M) is not None


def missing_message(names: list, context: Context | None) -> str:
    """Why a probe found no ``name``: the cell that should define it raised, or was stopped."""
    parts = []
    for name in [str(n)[:80] for n in names[:5]]:
        why = "no cell defines it (check its spelling, and run the notebook top to bottom)"
        for index, (number, source) in enumerate(context.cells if context else []):
            if not _defines(source, name):
                continue
            if index in context.failures:
                why = f"cell {number} raised {context.failures[index]}"
                break
            if index in context.skipped:
                why = f"cell {number} ran past the time limit per cell and was stopped"
                break
            why = f"cell {number} defines it but it was not defined after the cells ran"
        parts.append(f"`{name}` is not defined: {why}")
    return "; ".join(parts)[:2000]


def verdict(test: Test, answer, context: Context | None = None) -> tuple[bool, str]:
    """(passed, message) for ``test`` given the sandbox's answer for it (or None)."""
    if isinstance(answer, dict) and set(answer) == {"missing"} and isinstance(
            answer["missing"], list):
        return False, missing_message(answer["missing"], context)
    if isinstance(answer, dict) and set(answer) == {"stopped"} and type(
            answer["stopped"]) in (int, float):  # the grader stopped the probe (it hung)
        return False, (f"stopped after {answer['stopped']:g} s (the time limit per test): your "
                       "code was still running when this test called it")
    if not isinstance(answer, dict) or not ({"value"} == set(answer) or {"error"} == set(answer)):
        return False, "no answer came back for this test (the notebook stopped before it ran)"
    if "error" in answer:
        return False, HIDDEN_ERROR if test.hidden else str(answer["error"])[:2000]
    try:
        got = decode(answer["value"])
    except (BadValue, ValueError, TypeError, RecursionError) as err:
        return False, f"what your code returned could not be read: {err}"[:300]
    namespace: dict = {"__name__": f"check_{test.name}"}
    try:
        exec(compile(test.check, f"<check {test.name}>", "exec"), namespace)
        namespace["check"](got)
    except AssertionError as err:
        return False, _message(err)
    except Exception as err:  # the check could not handle what came back
        return False, HIDDEN_BAD_VALUE if test.hidden else _message(err)[:2000]
    return True, ""


def forbidden_message(used: dict, context: Context) -> str:
    where = "; ".join(f"{ref} (cell {context.cells[i][0]})" if i < len(context.cells) else ref
                      for ref, i in sorted(used.items()))
    return (f"your code uses {where}, which this assignment does not allow in answers: this "
            "test compares your answer with it, so it earns nothing")


def score(autograder, values: dict, context: Context | None = None) -> tuple[dict, float]:
    """({question: {score, possible, tests}}, total) from the sandbox's probe values.

    A test whose check compares against a forbidden reference that the code uses
    (``context.forbidden``) fails, with a message that says why.
    """
    from coursetools.grading.references import compared

    context = context or Context()
    questions: dict = {q: {"score": 0.0, "possible": p, "tests": []}
                       for q, p in autograder.questions.items()}
    for test in autograder.tests:
        used = {r: i for r, i in context.forbidden.items()
                if r in compared(test.check, tuple(context.forbidden))}
        if used:
            passed, message = False, forbidden_message(used, context)
        else:
            passed, message = verdict(test, values.get(test.name), context)
        entry = questions[test.question]
        entry["tests"].append({"name": test.name, "hidden": test.hidden, "points": test.points,
                               "passed": passed, "message": "" if passed else message})
        if passed:
            entry["score"] += test.points
    total = sum(q["score"] for q in questions.values())
    return questions, total
