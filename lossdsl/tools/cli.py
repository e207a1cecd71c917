"""The ``lossdsl`` command: show, check, plot and export a loss; list the functions.

Exit codes: 0 success; 1 the gradient check disagrees; 2 a mistake in the
expression, the arguments, or a missing optional dependency (the message says
which; never a traceback); 3 the gradient check is inconclusive (too few
entries finite to compare); 141 standard output was closed early (``| head``),
as for a program killed by SIGPIPE, without a traceback. Each compile-time
warning is printed once, as ``LossDSLWarning: ...`` on standard error. An expression
may start with ``-`` (``lossdsl show "-mean(y_true*log(y_pred))"``). ``show``, ``ops``
and ``export`` do not import TensorFlow (they answer fast); ``check`` and ``plot`` do.

    >>> main(["ops", "--markdown"])  # doctest: +ELLIPSIS
    | function | meaning |
    | --- | --- |
    | `abs(x)` | absolute value |
    ...
    0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from lossdsl.errors import LossDSLError, LossDSLWarning
from lossdsl.ops import OPS
from lossdsl.tools.unix import HelpFormatter, expressions_as_positionals, show_once
from lossdsl.version import __version__

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT_CLOSED_PIPE = 128 + 13  # what a shell reports for a program ended by SIGPIPE
FOCAL = "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))"

_EXAMPLES = {
    "show": f"""examples:
  lossdsl show "mean((y_true-y_pred)^2)"
  lossdsl show "{FOCAL}" --param alpha=0.25 --param gamma=2
  lossdsl show "mean(abs(y_true-y_pred))" --latex
  lossdsl show "mean(log1p(exp(-y_true*y_pred)))" --json
  lossdsl show "softplus(y_pred) - y_true*y_pred" --hessian""",
    "check": f"""examples:
  lossdsl check "mean((y_pred-mean(y_pred))^2)"
  lossdsl check "{FOCAL}" --param alpha=0.25 --param gamma=2 --shape 16 3
  lossdsl check "mean(mask*(y_true-y_pred)^2)/mean(mask)" --input mask""",
    "plot": f"""examples:
  lossdsl plot "mean((y_true-y_pred)^2)" --y-true 0 --y-true 1 --range -1 2 -o mse.png
  lossdsl plot "{FOCAL}" --param alpha=0.25 --param gamma=2 --y-true 1 -o focal.png""",
    "export": f"""examples:
  lossdsl export "{FOCAL}" --param alpha=0.25 --param gamma=2 --class-name FocalLoss -o focal_loss.py
  lossdsl export "mean(abs(y_true-y_pred))" --class-name MAE""",
    "ops": "examples:\n  lossdsl ops\n  lossdsl ops --markdown",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(expressions_as_positionals(
        sys.argv[1:] if argv is None else list(argv), parser))
    if getattr(args, "expr", None) is not None:
        args.expr = args.expr.strip()
    try:
        with warnings.catch_warnings():
            # A loss compiled more than once (checked, then plotted per curve) warns each
            # time, from several lines: print each message once, without a source line.
            warnings.simplefilter("always", LossDSLWarning)
            warnings.showwarning = show_once(set())
            code = args.run(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
    except LossDSLError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader is gone (`lossdsl show ... | head -1`): nothing more to say, and
        # Python's own flush at exit must not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossdsl", description="Inspect, check, plot and export one-line Keras losses.",
        formatter_class=HelpFormatter,
        epilog="examples:\n" + "\n".join(
            line for text in _EXAMPLES.values() for line in text.splitlines()[1:2]) +
               "\n\nrun `lossdsl COMMAND --help` for each command's options")
    parser.add_argument("--version", action="version", version=f"lossdsl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _show_parser(_command(commands, "show", "the formulas, gradients and domain of a loss", _show))
    _check_parser(_command(commands, "check", "the derived gradient against tf.GradientTape",
                           _check))
    _plot_parser(_command(commands, "plot", "the loss and its derivative over y_pred, as PNG",
                          _plot))
    _export_parser(_command(commands, "export", "a standalone Python module with a Keras loss",
                            _export))
    ops = _command(commands, "ops", "every function of the language", _ops, takes_expr=False)
    ops.add_argument("--markdown", action="store_true",
                     help="print the README's Markdown table")
    return parser


def _command(commands: "argparse._SubParsersAction", name: str, help_text: str,
             run: Callable[[argparse.Namespace], int],
             takes_expr: bool = True) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text[0].upper() +
                                 help_text[1:] + ".", epilog=_EXAMPLES[name],
                                 formatter_class=HelpFormatter)
    parser.set_defaults(run=run)
    if takes_expr:
        parser.add_argument("expr", metavar="EXPR",
                            help="the loss of one sample, one line (it may start with -)")
        parser.add_argument("--param", action="append", default=[], type=_param,
                            metavar="NAME=VALUE", help="a parameter's value (repeatable); "
                            "w=1,2,5 gives a vector parameter one value per class")
    return parser


def _param(text: str) -> tuple[str, float | list[float]]:
    """``alpha=0.25``, or ``w=1,2,5`` (commas: a vector parameter, one value per class)."""
    name, sep, value = text.partition("=")
    try:
        if "," in value and sep and name.strip():
            return name.strip(), [float(item) for item in value.strip("[]").split(",")]
        return name.strip(), float(value if sep and name.strip() else "not a number")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with a number for VALUE (or numbers separated by commas), "
            f"got {text!r}") from None


def _params(args: argparse.Namespace) -> dict[str, float]:
    return dict(args.param)


# ------------------------------------------------------------------ show

def _input_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", default=[], metavar="NAME", help="an "
                        "extra input the source reads (a mask), as inputs=[NAME] (repeatable)")


def _show_parser(parser: argparse.ArgumentParser) -> None:
    _input_argument(parser)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--latex", action="store_true", help="print LaTeX")
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--markdown", action="store_true", help="print Markdown")
    parser.add_argument("--hessian", action="store_true",
                        help="also the diagonal of the Hessian w.r.t. y_pred (as a boosting "
                             "objective uses it, y_pred being the raw margin)")


def _show(args: argparse.Namespace) -> int:
    from lossdsl.analysis.explain import explain

    report = explain(args.expr, inputs=args.input, **_params(args))
    if args.hessian:
        hessian = _hessian(args.expr)  # a mistake is reported before anything prints
        if args.json:
            data = report.to_dict()
            data["formulas"]["hessian"] = hessian
            print(json.dumps(data, indent=2))
            return EXIT_OK
    if args.latex:
        print(report.to_latex())
    elif args.json:
        print(report.to_json())
    elif args.markdown:
        print(report.to_markdown())
    else:
        print(report.to_text())
    if args.hessian:
        print(f"\n$$\n{hessian['latex']}\n$$" if args.latex or args.markdown else
              f"\nd2 loss / d y_pred2, diagonal (y_pred: the raw margin)\n  {hessian['text']}")
    return EXIT_OK


def _hessian(source: str) -> dict[str, str]:
    """The diagonal Hessian as lossdsl source (with the source's names) and as LaTeX."""
    from lossdsl.analysis.analyze import analyze
    from lossdsl.analysis.naming import name_formulas, user_bindings
    from lossdsl.boosting.second_order import hessian_formula, second_order

    formulas = second_order(source)
    shown = hessian_formula(source)
    named = name_formulas([formulas.hessian], formulas.table, user_bindings(analyze(source)))
    return {"text": named.text(), "latex": shown["latex"]}


# ------------------------------------------------------------------ check

def _check_parser(parser: argparse.ArgumentParser) -> None:
    _input_argument(parser)
    parser.add_argument("--shape", type=int, nargs="+", metavar="DIM",
                        help="shape of the random batch (default: 4 5, or 4 3 5 ... when "
                             "the loss reduces over axis 2 or beyond)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance")
    parser.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance")


def _check(args: argparse.Namespace) -> int:
    from lossdsl.analysis.analyze import compile_expression
    from lossdsl.analysis.inputs import declared_inputs
    from lossdsl.tools.check import check_gradients

    params = _params(args)  # mistakes are reported before TF loads; extra inputs are drawn
    compiled = compile_expression(args.expr, params, inputs=(
        "y_true", "y_pred", *declared_inputs(args.input, params)))
    report = check_gradients(compiled, shape=args.shape and tuple(args.shape), seed=args.seed,
                             rtol=args.rtol, atol=args.atol)
    print(report)
    if report.inconclusive:
        print("error: the gradient check is inconclusive: too few entries were compared "
              "(see above); try other points with --seed or --shape", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    return EXIT_OK if report.passed else EXIT_MISMATCH


# ------------------------------------------------------------------ plot

def _plot_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--y-true", type=float, action="append", required=True,
                        metavar="VALUE", help="y_true of a curve (repeat for several curves)")
    parser.add_argument("--range", type=float, nargs=2, metavar=("LO", "HI"),
                        help="y_pred range (default: (0, 1) without the ends when the loss "
                             "needs y_pred in a bounded domain, else -3 3)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.png", help="PNG to write")
    parser.add_argument("--width", type=int, default=900, help="pixels")
    parser.add_argument("--height", type=int, default=450, help="pixels")
    parser.add_argument("--points", type=int, default=400, help="y_pred samples per curve")


def _plot(args: argparse.Namespace) -> int:
    from lossdsl.analysis.analyze import compile_expression
    from lossdsl.tools.plot import MissingDependency, plot_loss

    compile_expression(args.expr, _params(args))  # report mistakes before TF loads
    try:
        path = plot_loss(args.expr, args.y_true, output=args.output, y_pred_range=args.range,
                         size=(args.width, args.height), points=args.points,
                         **_params(args))
    except MissingDependency as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {path}")
    return EXIT_OK


# ------------------------------------------------------------------ export

def _export_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--class-name", required=True, metavar="NAME",
                        help="the generated loss class's name")
    parser.add_argument("-o", "--output", metavar="FILE.py",
                        help="write the module here (default: standard output)")


def _export(args: argparse.Namespace) -> int:
    from lossdsl.tools.export import export_source

    code = export_source(args.expr, args.class_name, **_params(args))
    if args.output:
        Path(args.output).write_text(code, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(code, end="")
    return EXIT_OK


# ------------------------------------------------------------------ ops

def ops_markdown() -> str:
    """The README's function table, from :data:`lossdsl.ops.OPS`."""
    rows = ["| function | meaning |", "| --- | --- |"]
    rows += [f"| `{op.signature}` | {op.doc} |" for op in OPS]
    return "\n".join(rows)


def _ops(args: argparse.Namespace) -> int:
    if args.markdown:
        print(ops_markdown())
        return EXIT_OK
    width = max(len(op.signature) for op in OPS)
    for op in OPS:
        print(f"{op.signature:<{width}}  {op.kind:<11}  {op.doc}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover - `python -m lossdsl.tools.cli`
    sys.exit(main())
