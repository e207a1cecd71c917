"""Filling a row's LaTeX template (:attr:`lossdsl.ops.Op.latex`) with its arguments' LaTeX.

Here, not in ``lossdsl.analysis.latex``, because the function classes of
``lossdsl.ops`` print themselves with it, and ``ops`` imports nothing above it.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Sequence

import sympy
from sympy.printing.latex import LatexPrinter

_OPENERS = re.compile(r"\\left\b|\\begin\b|\{")
_CLOSERS = re.compile(r"\\right\b|\\end\b|\}")


@lru_cache(maxsize=None)
def bare_slots(template: str) -> frozenset[int]:
    r"""The arguments of a LaTeX template that no bracket, brace or environment encloses.

    Such an argument is juxtaposed with the rest of the template, as a factor
    of a product (``{0} \log\left({1}\right)``), so it needs the brackets
    a factor needs.

        >>> sorted(bare_slots(r"{0} \log\left({1}\right)"))
        [0]
        >>> sorted(bare_slots(r"\frac{{{0}}}{{{1}}}"))
        []
    """
    depth, bare = 0, set()
    for literal, field, _, _ in string.Formatter().parse(template):
        depth += len(_OPENERS.findall(literal)) - len(_CLOSERS.findall(literal))
        if field is not None and depth == 0:
            bare.add(int(field))
    return frozenset(bare)


def format_template(template: str, printer: LatexPrinter, args: Sequence[sympy.Basic]) -> str:
    """Fill an OPS LaTeX template with the arguments' LaTeX, bracketing bare factors.

    A bare argument is bracketed by SymPy's rule for a factor that is neither
    first nor last in a product: sums, negative terms, ``cases`` and the like.
    """
    bare = bare_slots(template)
    texts = []
    for index, arg in enumerate(args):
        tex = printer._print(arg)
        if index in bare and printer._needs_mul_brackets(arg, first=False, last=False):
            tex = rf"\left({tex}\right)"
        texts.append(tex)
    return template.format(*texts)
