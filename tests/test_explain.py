"""lossdsl.explain: canonical form, gradients three ways, LaTeX, domain conditions, renderings.

Nothing here needs TensorFlow; expected LaTeX and conditions are written by hand.
"""

import json

import pytest
import sympy

import lossdsl
from lossdsl.language.ir import parse_source
from lossdsl.symbolic.counts import Count

FOCAL = "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))"
SOURCES = [
    "mean((y_true-y_pred)^2)",
    FOCAL,
    "p=clip(y_pred,1e-7,1-1e-7);alpha=.25;mean(-alpha*y_true*log(p))",
    "-sum(y_true*log_softmax(y_pred, axis=-1))",
    "1 - 2*sum(y_true*y_pred)/(sum(y_true)+sum(y_pred))",
    "mean(where(abs(y_true-y_pred) <= 1, 0.5*(y_true-y_pred)^2, abs(y_true-y_pred) - 0.5))",
]


@pytest.mark.parametrize("source", SOURCES)
def test_canonical_form_parses_back_to_the_same_program(source):
    report = lossdsl.explain(source)
    assert parse_source(report.canonical) == parse_source(source)
    assert lossdsl.explain(report.canonical).loss == report.loss


@pytest.mark.parametrize("source", SOURCES)
def test_cse_form_and_derived_form_equal_the_simplified_gradient(source):
    report = lossdsl.explain(source)
    replacements, reduced = report.gradient_cse
    for symbol, value in reversed(replacements):
        reduced = reduced.xreplace({symbol: value})
    assert numerically_equal(reduced, report.gradient)
    assert numerically_equal(report.gradient_as_derived, report.gradient)


def numerically_equal(a, b, tries=5):
    """Equal at random points in (0.1, 0.9) for every free symbol (reductions, counts too)."""
    import random
    rng = random.Random(0)
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    for _ in range(tries):
        point = {s: sympy.Float(rng.uniform(0.1, 0.9)) for s in symbols}
        if abs(_value(a.xreplace(point)) - _value(b.xreplace(point))) > 1e-9:
            return False
    return True


# lossdsl's own functions have no numeric evaluation in SymPy; these do.
_NUMERIC = {"clip": lambda x, lo, hi: sympy.Min(sympy.Max(x, lo), hi),
            "sigmoid": lambda x: 1 / (1 + sympy.exp(-x)),
            "softplus": lambda x: sympy.log(1 + sympy.exp(x)),
            "xlogy": lambda x, y: x * sympy.log(y),
            "xlog1py": lambda x, y: x * sympy.log(1 + y),
            "xdivy": lambda x, y: x / y,
            "log1p": lambda x: sympy.log(1 + x),
            "expm1": lambda x: sympy.exp(x) - 1,
            "maximum": sympy.Max, "minimum": sympy.Min}


def _value(expr):
    expr = expr.replace(lambda e: type(e).__name__ in _NUMERIC,
                        lambda e: _NUMERIC[type(e).__name__](*e.args))
    return complex(expr)


def test_focal_report_holds_every_formula():
    report = lossdsl.explain(FOCAL, alpha=0.25, gamma=2.0)
    y_true, y_pred, alpha, gamma, n = sympy.symbols("y_true y_pred alpha gamma n", real=True)
    n = Count(None)
    expected = -alpha * y_true * (1 - y_pred)**gamma * (
        1 / y_pred - gamma * sympy.log(y_pred) / (1 - y_pred)) / n
    assert numerically_equal(report.gradient, expected)
    assert not numerically_equal(report.gradient, expected * 1.001)
    assert set(report.parameter_gradients) == {"alpha", "gamma"}
    assert report.params == {"alpha": 0.25, "gamma": 2.0}
    assert report.gradient_cse[0] == ((sympy.Symbol("t0", real=True), 1 - y_pred),)


def test_parameters_without_values_stay_symbols():
    report = lossdsl.explain(FOCAL, alpha=0.5)
    assert report.params == {"alpha": 0.5}
    assert "gamma (no value)" in report.to_text()


def test_unknown_parameter_is_a_lossdsl_error():
    with pytest.raises(lossdsl.DSLNameError, match="Did you mean `gamma`"):
        lossdsl.explain(FOCAL, gama=2.0)


# ------------------------------------------------------------------ LaTeX, by hand

@pytest.mark.parametrize("source, loss_latex, gradient_latex", [
    ("mean((y_true-y_pred)^2)",
     r"\operatorname{mean}\left(\left(- y_{\mathrm{pred}} + y_{\mathrm{true}}\right)^{2}\right)",
     r"\frac{2 \left(y_{\mathrm{pred}} - y_{\mathrm{true}}\right)}{n}"),
    ("mean(abs(y_true-y_pred))",
     r"\operatorname{mean}\left(\left|{y_{\mathrm{pred}} - y_{\mathrm{true}}}\right|\right)",
     r"\frac{\operatorname{sign}{\left(y_{\mathrm{pred}} - y_{\mathrm{true}} \right)}}{n}"),
    ("-sum(y_true*log_softmax(y_pred))",
     r"- \sum\left(y_{\mathrm{true}} \left(- \operatorname{logsumexp}\left(y_{\mathrm{pred}}, "
     r"\mathrm{axis}=-1\right) + y_{\mathrm{pred}}\right)\right)",
     # \sum followed by a factor is bracketed, or it would read as the sum of the product.
     r"\left(\sum\left(y_{\mathrm{true}}, \mathrm{axis}=-1\right)\right) e^{- \operatorname{logsumexp}"
     r"\left(y_{\mathrm{pred}}, \mathrm{axis}=-1\right) + y_{\mathrm{pred}}} - y_{\mathrm{true}}"),
    ("mean(softplus(y_pred) - y_true*y_pred)",
     r"\operatorname{mean}\left(\operatorname{softplus}\left(y_{\mathrm{pred}}\right)\right) - "
     r"\operatorname{mean}\left(y_{\mathrm{pred}} y_{\mathrm{true}}\right)",
     r"\frac{- y_{\mathrm{true}} + \sigma\left(y_{\mathrm{pred}}\right)}{n}"),
])
def test_latex_of_loss_and_gradient(source, loss_latex, gradient_latex):
    report = lossdsl.explain(source)
    assert report.latex(report.loss) == loss_latex
    assert report.latex(report.gradient) == gradient_latex


def test_latex_block_and_jupyter_reprs():
    report = lossdsl.explain(FOCAL, alpha=0.25, gamma=2.0)
    block = report.to_latex()
    assert block.startswith("\\begin{aligned}\n") and block.endswith("\n\\end{aligned}")
    assert r"\frac{\partial L}{\partial \gamma} &= " in block
    assert r"&\text{needs } y_{\mathrm{pred}} > 0" in block
    assert report._repr_latex_() == f"$$\n{block}\n$$"
    markdown = report._repr_markdown_()
    assert f"$$\n{report.gradient.latex()}\n$$" in markdown
    assert f"`{report.gradient}`" in markdown
    assert "- `y_pred > 0` (loss, gradient)" in markdown


def test_dict_and_json_forms_agree():
    report = lossdsl.explain(FOCAL, alpha=0.25, gamma=2.0)
    data = json.loads(report.to_json())
    assert data == report.to_dict()
    assert data["formulas"]["gradient"]["text"] == str(report.gradient)
    assert data["formulas"]["gradient"]["bindings"] == [["n", "sum(1)"]]
    assert data["rewrites"] == list(report.rewrites)
    assert data["formulas"]["d/gamma"]["latex"] == report.latex(report.parameter_gradients["gamma"])
    # The stable gradient has no 1/(1 - y_pred) left, so y_pred = 1 is no longer a condition.
    assert [c["requirement"] for c in data["conditions"]] == ["y_pred > 0"]
    assert data["counts"] == ["n = number of elements of one sample"]


# ------------------------------------------------------------------ domain conditions

def conditions(source, **params):
    return [(c.text, c.applies_to, c.kind) for c in lossdsl.explain(source, **params).conditions]


def test_log_needs_a_positive_argument_and_the_gradient_a_nonzero_one():
    both = ("loss", "gradient")
    assert conditions("mean(-y_true*log(y_pred) - (1-y_true)*log(1-y_pred))") == [
        ("y_pred > 0", both, "domain"), ("y_pred < 1", both, "domain")]


def test_focal_with_an_integer_gamma_versus_a_symbolic_one():
    both = ("loss", "gradient")
    assert conditions(FOCAL, alpha=0.25, gamma=2.0) == [("y_pred > 0", both, "domain")]
    # Without a value, (1 - y_pred)^gamma is only real for y_pred <= 1.
    assert conditions(FOCAL)[0] == ("y_pred <= 1", both, "domain")


def test_sqrt_is_defined_at_zero_but_its_gradient_is_not():
    assert conditions("mean(sqrt(y_pred))") == [
        ("y_pred >= 0", ("loss", "gradient"), "domain"),
        ("y_pred > 0", ("gradient",), "domain")]


def test_abs_and_maximum_have_kinks():
    assert conditions("mean(abs(y_true - y_pred))") == [
        ("y_pred != y_true", ("gradient",), "kink")]
    assert conditions("mean(maximum(y_pred, 0.5))") == [
        ("y_pred != 0.5", ("gradient",), "kink")]


def test_division_by_a_reduction_and_smooth_losses():
    assert conditions("1 - 2*sum(y_true*y_pred)/(sum(y_true)+sum(y_pred))") == [
        ("sum(y_pred) + sum(y_true) != 0", ("loss", "gradient"), "domain")]
    assert conditions("-sum(y_true*log_softmax(y_pred))") == []
    assert conditions("mean((y_true-y_pred)^2)") == []


def test_parameter_values_settle_conditions_on_parameters():
    assert conditions("mean(log(alpha)*y_pred)", alpha=2.0) == []
    assert conditions("mean(log(alpha)*y_pred)") == [("alpha > 0", ("loss", "gradient"), "domain")]


def test_text_report_lists_conditions():
    text = str(lossdsl.explain("mean(log(y_pred))"))
    assert "y_pred > 0" in text and "log(y_pred) is undefined below 0" in text
    assert "nowhere" in str(lossdsl.explain("mean(y_pred^2)"))


def test_xlogy_is_defined_at_zero_where_its_first_argument_is_zero():
    report = lossdsl.explain("mean(xlogy(y_true, y_pred))")
    assert [(c.text, c.applies_to, c.kind) for c in report.conditions] == [
        ("y_pred > 0", ("loss", "gradient"), "domain")]
    assert "unless y_true = 0" in report.conditions[0].reason


# ------------------------------------------------------------------ readable forms (issue 15)

def test_written_and_running_forms_side_by_side_with_the_rewrites():
    report = lossdsl.explain("e = y_pred - y_true; mean(log(cosh(e)))")
    assert report.rewrites  # log(cosh(e)) runs as a softplus form
    lines = report.to_text().splitlines()
    written = lines.index("loss as written")
    assert lines[written + 1] == "  e = y_pred - y_true; mean(log(cosh(e)))"
    assert lines[written + 2] == f"  rewrites: {', '.join(report.rewrites)}"
    assert lines[written + 3] == "loss as it runs"
    markdown = report.to_markdown()
    assert "| as written | runs as | rewrites |" in markdown
    assert f"| `{report.canonical}` | `{report.loss}` |" in markdown
    plain = lossdsl.explain("mean(y_pred^2)")
    assert "rewrites: none: it runs as written" in plain.to_text()


def test_every_formula_in_the_text_report_is_source_that_parses():
    report = lossdsl.explain("p = clip(y_pred, 1e-7, 1 - 1e-7); alpha = 0.25; gamma = 2; "
                             "mean(-alpha*y_true*(1-p)^gamma*log(p))")
    lines = report.to_text().splitlines()
    for _, title, formula in report.formulas():
        start = lines.index(title) + 1
        end = next(i for i in range(start, len(lines)) if not lines[i].startswith("  "))
        program = " ".join(line.strip() for line in lines[start:end])
        assert parse_source(program) == parse_source(str(formula))
        assert "clip(" not in program.split(";", 1)[1]  # p is used, not repeated
    assert "Heaviside" not in report.to_text() and "Piecewise" not in report.to_text()


def test_conditions_and_latex_use_the_users_names():
    report = lossdsl.explain("p = clip(y_pred, 1e-7, 1 - 1e-7); mean(-y_true*log(p))")
    assert report.requirement(report.conditions[0]) == "p > 0"
    assert "  p > 0 " in report.to_text()
    mu = lossdsl.explain("mu = mean(y_pred); mean((y_pred - mu)^2)")
    assert r"\mu &= \operatorname{mean}\left(y_{\mathrm{pred}}\right)" in mu.to_latex()
    assert r"\mu" in mu.gradient.latex()
