"""The `lossdsl` command, run as a subprocess: output and exit codes of every command."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lossdsl.ops import OPS

ROOT = Path(__file__).resolve().parents[1]
FOCAL = "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))"
FOCAL_PARAMS = ["--param", "alpha=0.25", "--param", "gamma=2"]


def run(*args, code=None):
    """`python -m lossdsl ARGS` from the tree under test (or `python -c CODE`)."""
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "lossdsl", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(ROOT)})


def test_show_prints_the_report():
    result = run("show", FOCAL, *FOCAL_PARAMS)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "loss as written\n  mean(-alpha * y_true * (1 - y_pred)^gamma * log(y_pred))\n" in out
    assert "parameters  alpha = 0.25, gamma = 2.0" in out
    assert ("d loss / d y_pred\n  n = sum(1);\n  -alpha * ((1 - y_pred)^gamma * xdivy(y_true, y_pred)"
            " - gamma * (1 - y_pred)^(gamma - 1) * xlogy(y_true, y_pred)) / n\n") in out
    assert "loss as it runs\n  -alpha * mean((1 - y_pred)^gamma * xlogy(y_true, y_pred))\n" in out
    assert re.search(r"y_pred > 0 +\[loss, gradient\] xlogy\(y_true, y_pred\): its log of y_pred"
                     r" needs this unless y_true = 0", out)


def test_show_latex_and_json():
    latex = run("show", "mean((y_true-y_pred)^2)", "--latex")
    assert latex.returncode == 0
    assert latex.stdout.splitlines()[2] == (
        r"\frac{\partial L}{\partial y_{\mathrm{pred}}} &= "
        r"\frac{2 \left(y_{\mathrm{pred}} - y_{\mathrm{true}}\right)}{n}")
    data = json.loads(run("show", FOCAL, *FOCAL_PARAMS, "--json").stdout)
    assert data["params"] == {"alpha": 0.25, "gamma": 2.0}
    assert data["conditions"][0]["requirement"] == "y_pred > 0"


@pytest.mark.parametrize("args, message", [
    (["show", "mean(lgo(y_pred))"], "Unknown function `lgo`. Did you mean `log`?"),
    (["export", "mean((y_true-y_pred)^2", "--class-name", "A"], "Syntax error"),
    (["plot", "mean(y_pred) +", "--y-true", "1", "-o", "x.png"], "Syntax error"),
    (["check", FOCAL, "--param", "alpha=1"], "The parameter `gamma` has no value."),
    (["export", "mean(y_pred)", "--class-name", "not valid"], "cannot be used as a Python"),
])
def test_mistakes_print_the_caret_message_and_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr
    if "lgo" in args[1]:
        assert "    mean(lgo(y_pred))\n         ^^^" in result.stderr


def test_bad_param_syntax_is_a_usage_error():
    result = run("show", "mean(y_pred)", "--param", "alpha")
    assert result.returncode == 2 and "expected NAME=VALUE" in result.stderr


@pytest.mark.parametrize("command", ["show", "check", "plot", "export", "ops"])
def test_every_command_has_help_with_examples(command, capsys):
    from lossdsl.tools.cli import main

    with pytest.raises(SystemExit) as exit_info:  # in-process: argparse's --help exits 0
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"lossdsl {command}" in out
    if command != "ops":
        assert "--param NAME=VALUE" in out


def test_top_level_help_lists_commands_with_examples():
    result = run("--help")
    assert result.returncode == 0
    assert all(f"lossdsl {c}" in result.stdout for c in ("show", "check", "plot", "export", "ops"))


def test_ops_lists_every_function():
    result = run("ops")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == len(OPS)
    for line, op in zip(lines, OPS):
        assert line.startswith(op.signature) and line.endswith(op.doc)


def test_readme_ops_table_is_lossdsl_ops_markdown():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- ops-table:start -->\n")[1].split("<!-- ops-table:end -->")[0]
    assert run("ops", "--markdown").stdout == table


@pytest.mark.parametrize("args", [
    ["show", FOCAL, *FOCAL_PARAMS], ["ops"],
    ["export", FOCAL, *FOCAL_PARAMS, "--class-name", "Focal"]])
def test_show_ops_export_do_not_import_tensorflow(args):
    code = ("import sys, io, contextlib; from lossdsl.tools.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): code = main(sys.argv[1:])\n"
            "print(code, sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = run(*args, code=code)
    assert result.stdout.strip() == "0 []", result.stderr


def test_check_exits_0_on_agreement_and_1_on_mismatch():
    agree = run("check", "mean((y_pred-mean(y_pred))^2)")
    assert agree.returncode == 0, agree.stderr
    assert agree.stdout.startswith("symbolic gradient and tf.GradientTape agree")
    # At zero tolerance the float64 round-off of the two computations is a mismatch.
    strict = run("check", FOCAL, *FOCAL_PARAMS, "--rtol", "0", "--atol", "0")
    assert strict.returncode == 1, strict.stderr
    assert strict.stdout.startswith("symbolic gradient and tf.GradientTape DISAGREE")


def test_plot_writes_a_png_of_the_requested_size(tmp_path):
    import matplotlib.image

    path = tmp_path / "focal.png"
    result = run("plot", FOCAL, *FOCAL_PARAMS, "--y-true", "1", "--y-true", "0.5",
                 "--width", "640", "--height", "320", "--points", "50", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (320, 640)
    assert image[..., :3].std() > 0.05  # curves and text, not a blank canvas


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from lossdsl.tools.cli import main; sys.exit(main(sys.argv[1:]))")
    result = run("plot", "mean(y_pred^2)", "--y-true", "0", "-o", str(tmp_path / "x.png"),
                 code=code)
    assert result.returncode == 2
    assert "needs matplotlib" in result.stderr and "pip install 'lossdsl[plot]'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()


def test_export_writes_a_module_or_prints_it(tmp_path):
    path = tmp_path / "focal_loss.py"
    result = run("export", FOCAL, *FOCAL_PARAMS, "--class-name", "FocalLoss", "-o", str(path))
    assert result.returncode == 0 and result.stdout.strip() == f"wrote {path}"
    printed = run("export", FOCAL, *FOCAL_PARAMS, "--class-name", "FocalLoss")
    assert printed.stdout == path.read_text()
    assert "def __init__(self, alpha=0.25, gamma=2.0, name='focal_loss'" in printed.stdout
    compile(printed.stdout, str(path), "exec")  # valid Python


# ------------------------------------------------------------------ a good Unix tool (issue 15)

def test_an_expression_may_start_with_a_minus():
    result = run("show", "-mean(y_true*log(y_pred))", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "-mean(y_true*log(y_pred))"
    from lossdsl.tools.cli import build_parser, expressions_as_positionals
    argv = ["plot", "-y_pred^2", "--y-true", "-1", "--range", "-2", "2", "-o", "a.png"]
    args = build_parser().parse_args(expressions_as_positionals(argv, build_parser()))
    assert args.expr.strip() == "-y_pred^2" and args.y_true == [-1.0] and args.range == [-2, 2]


def test_version():
    from lossdsl.version import __version__
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"lossdsl {__version__}"


def test_a_closed_pipe_is_no_traceback():
    command = (f"'{sys.executable}' -m lossdsl show \"{FOCAL}\" --param alpha=0.25 "
               "--param gamma=2 | head -1")
    result = subprocess.run(["/bin/sh", "-c", command], cwd=ROOT, capture_output=True, text=True,
                            timeout=240, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.stdout.startswith("source ")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_a_closed_pipe_exits_like_sigpipe(monkeypatch):
    from lossdsl.tools import cli

    class Closed:
        def write(self, text):
            raise BrokenPipeError

        def flush(self):
            raise BrokenPipeError

        def fileno(self):
            return sys.__stdout__.fileno()
    saved = os.dup(sys.__stdout__.fileno())
    try:
        monkeypatch.setattr(sys, "stdout", Closed())
        assert cli.main(["ops"]) == cli.EXIT_CLOSED_PIPE
    finally:
        os.dup2(saved, sys.__stdout__.fileno())
        os.close(saved)


def test_help_shows_defaults(capsys):
    from lossdsl.tools.cli import main

    for command, expected in [("check", "random seed (default: 0)"),
                              ("plot", "pixels (default: 900)"),
                              ("check", "relative tolerance (default: 1e-06)")]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert expected in " ".join(capsys.readouterr().out.split())


def test_warnings_are_printed_once_without_source_lines():
    result = run("check", "mean(-y_true*log(y_pred))")
    warnings = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith("LossDSLWarning: ")
    assert "warnings.warn" not in result.stderr and ".py:" not in result.stderr


def test_show_hessian_is_lossdsl_source():
    result = run("show", "e = y_pred; softplus(e) - y_true*e", "--hessian")
    assert result.returncode == 0, result.stderr
    text = result.stdout.rstrip().splitlines()[-1].strip()
    assert text == "e = y_pred; sigmoid(e) * sigmoid(-e)"
    data = json.loads(run("show", "e = y_pred; softplus(e) - y_true*e", "--hessian", "--json").stdout)
    assert data["formulas"]["hessian"]["text"] == text
