"""What makes ``lossdsl`` a good Unix tool, apart from its commands.

An expression may start with ``-`` (:func:`expressions_as_positionals`), every
option shows its default in ``--help`` (:class:`HelpFormatter`), and a warning
is printed once, as ``Category: message``, without a Python source line
(:func:`show_once`). The closed-pipe exit is in :func:`lossdsl.tools.cli.main`.

    >>> expressions_as_positionals(["show", "-mean(y_pred)"], _demo_parser())
    ['show', ' -mean(y_pred)']
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Callable


def _demo_parser() -> argparse.ArgumentParser:
    """A parser with a ``show`` and a ``plot`` command, for the examples."""
    parser = argparse.ArgumentParser(prog="demo")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("show").add_argument("expr")
    plot = commands.add_parser("plot")
    plot.add_argument("expr")
    plot.add_argument("--range", type=float, nargs=2)
    plot.add_argument("-o", "--output")
    return parser


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def expressions_as_positionals(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Let an expression start with ``-``: ``show "-mean(...)"`` is not an option.

    An argument that starts with one ``-`` and is neither a negative number nor an
    option of the command gets a leading space, which argparse reads as a
    positional and the language ignores.

        >>> expressions_as_positionals(["show", "-mean(y_pred)", "--latex"], _demo_parser())
        ['show', ' -mean(y_pred)', '--latex']
        >>> expressions_as_positionals(["plot", "x", "--range", "-1", "2", "-o", "a.png"], _demo_parser())
        ['plot', 'x', '--range', '-1', '2', '-o', 'a.png']
    """
    short = {option for action in _all_actions(parser) for option in action.option_strings
             if not option.startswith("--")}
    out = []
    for arg in argv:
        is_option = arg.startswith("--") or arg == "-" or _NEGATIVE_NUMBER.match(arg) or (
            arg[:2] in short and not re.search(r"[()*+/^ ,]", arg))
        out.append(" " + arg if arg.startswith("-") and not is_option else arg)
    return out


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    actions = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                actions += _all_actions(sub)
    return actions


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; every option with a default says it: ``(default: 0)``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default == [] or
                     default == argparse.SUPPRESS)
        if "(default" not in text and shown and action.option_strings:
            text += " (default: %(default)s)"
        return text


def show_once(shown: set[str]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``Category: message`` once per message."""
    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        text = f"{category.__name__}: {message}"
        if text not in shown:
            shown.add(text)
            print(text, file=sys.stderr)
    return show
