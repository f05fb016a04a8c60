"""Every measured number in a chapter's or lab's prose comes from a run of its notebooks.

The prose of a chapter is its ``index.md`` and the markdown cells of its notebooks; the prose of
the labs is the markdown of ``labs/*.ipynb`` (``labs/README.md`` quotes benchmark runs, which
are not committed outputs yet, so it is not checked here). A *measurement number* is a number
written with a decimal point, a thousands comma, an exponent or a percent sign (``0.068``,
``7,027``, ``3e-11``, ``78.9%``), or a plain integer of two digits or more that is not a year
("241 iterations", "at 4 of 4 seeds" is below it; a shape such as 784-512-10 or 2x512 is a name,
not a count). A plain integer is found only as an integer-valued output number. Inline math
counts (``$L = 3.8806$``, ``$2 \\times 10^{-11}$``), its symbols and integers do not.
Text that cannot hold a measurement is removed first: display math (``$$...$$``), code spans
and blocks, citations and cross references, headings, URLs, and numbered names such as
"Theorem 4.6", "chapter 7", "Python 3.11" or a version "2.14.1".

A number is *found* when some number in the stored outputs of the cells tagged
``nbval-check-output`` of the same folder's notebooks (the cells nbval re-checks, CONTRIBUTING.md),
or a MyST-NB ``glue``'d value, rounded to the prose's precision, equals it; as a fraction or a
percentage, either way round. A timing (a number followed by ``x``, ``×``, ``s`` or ``ms``) may
also come from an unchecked cell's output, since timings vary from run to run and are printed
unchecked. A number that is found nowhere is an **orphan** and fails the test.

Numbers that are not measurements (a parameter value, a constant of an equation written in
words, a number from a cited paper) are allowed in two explicit ways:

* a value in the notebooks' ``parameters`` cell (the knobs of the run) is a parameter, not an
  orphan;
* ``tests/prose_numbers_allowed.txt``: one line per number, ``path | number | why``, e.g.
  ``chapters/06_adam/index.md | 0.999 | Adam's default beta2``. Each line must still occur in
  its file's prose (stale lines fail), and the reason is required.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_FILE = ROOT / "tests" / "prose_numbers_allowed.txt"

#: A number as prose writes a measurement: 0.068, 7,027, 3e-11, 1.9, 78.9% (sign and % apart).
NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+(?:[eE][-+]?\d+)?"
                    r"|\d+(?:\.\d+)?[eE][-+]?\d+|\d+(?:\.\d+)?(?=\s?%))(?![\w.]\d)"
                    r"(\s?(?:(?:x|×|ms|s)\b|%))?")
#: A number anywhere in an output (looser: any integer or float, signs ignored).
OUT_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
#: Names followed by a number that is a label, not a measurement.
LABELS = re.compile(
    r"\b(?:chapters?|sections?|appendix|theorem|lemma|assumption|corollary|proposition|"
    r"definition|figure|table|eq(?:uation)?|exercises?|lab|assignment|version|"
    r"python|torch|pytorch|numpy|cuda|§)\s*\d+(?:\.\d+)*(?:\s*(?:and|,|-|–|to)\s*"
    r"\d+(?:\.\d+)*)*", re.IGNORECASE)
VERSION = re.compile(r"\b\d+\.\d+\.\d+(?:\.\w+)?\b")
#: A plain integer of two digits or more, not part of a decimal, a thousands group, a percentage,
#: a shape (784-512-10, 2x512, 784 → 512) or a word.
INTEGER = re.compile(r"(?<![\w.,/^×→\-–+])(?<!→ )(?<!× )(\d{2,})"
                     r"(?![\w.,/×→\-–+]|\s?%|\s?[×x]\s?\d|\s?→)")


def strip_non_measurements(text: str) -> str:
    """The prose without math, code, citations, references, headings, URLs and labels."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)           # code and directives
    text = re.sub(r":::.*?:::", lambda m: m.group(0), text, flags=re.DOTALL)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.DOTALL)          # display math
    text = re.sub(r"(?<!\\)\$([^$]+?)(?<!\\)\$", lambda m: _math_numbers(m.group(1)), text)
    text = re.sub(r"`[^`]*`", " ", text)                               # code spans, roles
    text = re.sub(r"\{[a-z:-]+\}`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)                           # link targets
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"^\s*(?:#+ |%|\(|:::|```|:[a-z-]+:).*$", " ", text, flags=re.MULTILINE)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.DOTALL)
    text = VERSION.sub(" ", text)
    return LABELS.sub(" ", text)


def _math_numbers(math: str) -> str:
    """The measured numbers an inline formula states (``L = 3.8806``, ``2.2 \\times 10^{-16}``,
    ``60{,}000``), as plain text; its symbols and integers (``2/L``, ``10^{-5}``) are dropped."""
    math = math.replace("{,}", ",")
    math = re.sub(r"(\d+(?:\.\d+)?)\s*\\(?:times|cdot)\s*10\^\{?(-?\d+)\}?", r" \1e\2 ", math)
    math = re.sub(r"10\^\{?-?\d+\}?", " ", math)
    math = re.sub(r"\\[a-zA-Z]+|[_^]\{[^}]*\}|[_^]\w", " ", math)  # commands, sub/superscripts
    return " " + " ".join(m.group(0) for m in NUMBER.finditer(math)) + " "


def prose_numbers(text: str) -> list[str]:
    """The measurement numbers of a piece of prose, as written (``7,027``, ``78.9``)."""
    return [number for number, _ in NUMBER.findall(strip_non_measurements(text))]


def prose_tokens(text: str) -> list[tuple[str, str]]:
    """Each measurement number with its unit: ``"%"``, a timing's ``"x"``, ``"×"``, ``"s"``,
    ``"ms"``, or ``""``."""
    return [(number, unit.strip()) for number, unit in
            NUMBER.findall(strip_non_measurements(text))]


def prose_integers(text: str) -> list[str]:
    """The plain integers of a piece of prose that may report a count (two digits or more, not a
    year from 1900 to 2100), as written."""
    return [m.group(1) for m in INTEGER.finditer(strip_non_measurements(text))
            if not 1900 <= int(m.group(1)) <= 2100]


def _value(token: str) -> float:
    return float(token.replace(",", ""))


def _decimals(token: str) -> int:
    """Digits after the point of a number as written (its precision); -k for 3e-11 style."""
    mantissa, _, exponent = token.replace(",", "").lower().partition("e")
    places = len(mantissa.partition(".")[2])
    return places - int(exponent) if exponent else places


def _matches(token: str, outputs: list[float], percent: bool = False) -> bool:
    """Some output number, rounded to the prose's precision, is the prose's number (also as a
    percentage of a fraction or the fraction of a percentage; a percentage may also be a printed
    ratio's excess over 1, "2.8% above" from ``1.028``)."""
    value, places = _value(token), _decimals(token)
    tolerance = 0.5 * 10.0 ** (-places) * (1 + 1e-9) + 1e-12
    for o in outputs:
        for candidate in (o, 100 * o, o / 100) + ((100 * (o - 1), 100 * (1 - o)) if percent
                                                    else ()):
            if abs(candidate - value) <= tolerance:
                return True
    return False


def notebook_texts(nb_path: Path) -> tuple[str, list[float], set[float], list[float]]:
    """A notebook's markdown, the numbers of its checked cells' stored outputs and glued values,
    the values written in its parameters cell, and the numbers of its unchecked outputs."""
    nb = json.loads(nb_path.read_text())
    markdown, outputs, parameters, unchecked = [], [], set(), []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            markdown.append(source)
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags:
            code = re.sub(r"(?<=\d)_(?=\d)", "", source)  # 4_000
            parameters.update(_value(m.group(0)) for m in OUT_NUMBER.finditer(code))
        for out in cell.get("outputs", []):
            glued = "scrapbook" in out.get("metadata", {})  # myst_nb.glue("name", value)
            into = outputs if "nbval-check-output" in tags or glued else unchecked
            pieces = [out.get("text", "")]
            data = out.get("data", {})
            pieces.append(data.get("text/plain", ""))
            pieces.append(data.get("text/markdown", ""))
            pieces.append(data.get("application/papermill.record/text/plain", ""))  # glue's
            for piece in pieces:
                piece = "".join(piece) if isinstance(piece, list) else piece
                into.extend(_value(m.group(0)) for m in OUT_NUMBER.finditer(piece))
    return "\n\n".join(markdown), outputs, parameters, unchecked


def allowed() -> dict[str, set[str]]:
    """The allow-list: path -> numbers, each line ``path | number | why``."""
    table: dict[str, set[str]] = {}
    for line in ALLOWED_FILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{ALLOWED_FILE.name}: '{line}' is not 'path | number | why'")
        table.setdefault(parts[0], set()).add(parts[1])
    return table


def units() -> list[tuple[str, list[Path], list[Path]]]:
    """(name, prose files, notebooks) of each chapter folder and of the labs."""
    found = []
    for folder in sorted((ROOT / "chapters").iterdir()):
        notebooks = sorted(folder.glob("*.ipynb"))
        if notebooks:
            found.append((str(folder.relative_to(ROOT)), [folder / "index.md"], notebooks))
    labs = sorted((ROOT / "labs").glob("*.ipynb"))
    found.append(("labs", [], labs))
    return found


def orphans(prose_files: list[Path], notebooks: list[Path]) -> list[str]:
    """``path: number`` for each measurement number of the prose found in no output."""
    outputs, parameters, unchecked, texts = [], set(), [], {}
    for nb in notebooks:
        markdown, numbers, params, others = notebook_texts(nb)
        outputs += numbers
        parameters |= params
        unchecked += others
        texts[nb] = markdown
    for md in prose_files:
        if md.is_file():
            texts[md] = md.read_text()
    allow = allowed()
    missing = []
    for path, text in texts.items():
        rel = str(path.relative_to(ROOT))
        for token, unit in prose_tokens(text):
            if _value(token) in parameters or token in allow.get(rel, ()):
                continue
            timing = unit not in ("", "%")
            if not _matches(token, outputs + unchecked if timing else outputs, unit == "%"):
                missing.append(f"{rel}: {token}")
        for token in prose_integers(text):
            if _value(token) in parameters or token in allow.get(rel, ()):
                continue
            if not any(o == _value(token) for o in outputs):
                missing.append(f"{rel}: {token}")
    return missing


UNITS = units()


@pytest.mark.parametrize("name,prose,notebooks", UNITS, ids=[u[0] for u in UNITS])
def test_every_measured_number_in_the_prose_is_in_a_stored_output(name, prose, notebooks):
    missing = orphans(prose, notebooks)
    assert not missing, (
        f"{name}: these numbers of the prose are in no stored output of its notebooks. Print "
        f"them in a checked cell (and re-execute), correct the prose, or, if one is not a "
        f"measurement, add 'path | number | why' to tests/prose_numbers_allowed.txt:\n  "
        + "\n  ".join(missing))


def test_every_allowed_number_is_still_in_its_prose():
    """A stale allow-list entry would hide the next number written there."""
    stale = []
    for rel, numbers in allowed().items():
        path = ROOT / rel
        text = notebook_texts(path)[0] if path.suffix == ".ipynb" else path.read_text()
        present = set(prose_numbers(text)) | set(prose_integers(text))
        stale += [f"{rel} | {n}" for n in sorted(numbers - present)]
    assert not stale, f"allow-list lines whose number the prose no longer has: {stale}"


def test_the_checker_finds_an_orphan_and_accepts_a_rounded_output():
    """The checker itself: numbers in math, code and labels are ignored; a rounded output
    number is found; a number nowhere in the outputs is an orphan."""
    prose = ("The loss falls to 0.068 in 7,027 steps ($L = 3.8806$, $2 \\times 10^{-11}$, "
             "$\\epsilon = 10^{-8}$, `lr=0.1`), see Theorem 4.6 and chapter 7.2; accuracy 78.9% "
             "and 2.5x faster; torch 2.14.1.\n\n$$ x = 0.5 y $$")
    assert prose_numbers(prose) == ["0.068", "7,027", "3.8806", "2e-11", "78.9", "2.5"]
    assert [u for _, u in prose_tokens(prose)] == ["", "", "", "", "%", "x"]
    outputs = [0.06804, 7027.0, 3.88061, 2.1e-11, 0.78912, 2.4971]
    assert all(_matches(t, outputs) for t in prose_numbers(prose))
    assert not _matches("0.069", outputs)
    assert not _matches("3e-11", [2e-11]) and _matches("3e-11", [2.6e-11])


def test_a_glued_value_counts_as_checked(tmp_path):
    """A value stored by ``myst_nb.glue`` (hidden output, prefixed mime type) is found."""
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["The floor is 0.0144."]},
        {"cell_type": "code", "metadata": {}, "source": ["glue('floor', 0.01436)"], "outputs": [
            {"output_type": "display_data", "metadata": {"scrapbook": {"name": "floor"}},
             "data": {"application/papermill.record/text/plain": "0.01436"}}]},
        {"cell_type": "code", "metadata": {}, "source": ["print(0.0143)"], "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["unchecked 0.0999\n"]}]}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    markdown, checked, _, unchecked = notebook_texts(path)
    assert checked == [0.01436] and unchecked == [0.0999]
    assert _matches("0.0144", checked) and not _matches("0.0143", checked)
    assert not _matches("0.0999", checked)


def test_a_plain_integer_count_is_checked_and_a_shape_is_not():
    """"241 iterations" must be an output; 784-512-10, 2x512, years and one-digit counts are not
    counts to check."""
    prose = ("GD needs 241 iterations on the 784-512-10 MLP (2x512 matrices, 784 → 512) since "
             "2019; 4 of 4 seeds; 3.5 points; 78%.")
    assert prose_integers(prose) == ["241"]
    assert not any(o == _value("241") for o in [241.4, 240.0])
    assert any(o == _value("241") for o in [241.0])
