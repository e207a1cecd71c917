"""Parsing and the IR: canonical printing, round trips, and every error kind with its caret."""

import pytest

import lossdsl
from lossdsl.errors import (DSLArityError, DSLAxisError, DSLLimitError, DSLNameError,
                            DSLSyntaxError, DSLTypeError)
from lossdsl.language.ir import (Binary, Call, Compare, Logic, Name, Negate, Not, Number,
                                 parse_source)


@pytest.mark.parametrize("source, canonical", [
    ("mean((y_true-y_pred)^2) + 0.1*mean((0.5-y_pred)^2)",
     "mean((y_true - y_pred)^2) + 0.1 * mean((0.5 - y_pred)^2)"),
    ("p = clip(y_pred, 1e-7, 1 - 1e-7); alpha = 0.25; mean(-alpha*y_true*log(p))",
     "p = clip(y_pred, 1e-7, 1 - 1e-7); alpha = 0.25; mean(-alpha * y_true * log(p))"),
    ("sum(y_pred, axis=(1,2))", "sum(y_pred, axis=(1, 2))"),
    ("softmax(y_pred, axis=-1)", "softmax(y_pred)"),
    ("-x^2^3", "-x^2^3"),
    ("(-x)^2", "(-x)^2"),
    ("a-(b-c)", "a - (b - c)"),
    ("(a-b)-c", "a - b - c"),
    ("a/(b*c)", "a / (b * c)"),
    ("(a^b)^c", "(a^b)^c"),
    ("2**-1", "2^-1"),
    ("where(y_true == 1, a, b)", "where(y_true == 1, a, b)"),
    ("mean(y_pred) # a comment", "mean(y_pred)"),
    ("where(0<y_pred<1, a, b)", "where(0 < y_pred < 1, a, b)"),
    ("where(0 < y_pred and y_pred < 1, a, b)", "where(0 < y_pred < 1, a, b)"),
    ("where(a<b and c<d or not e>f, 1, 2)", "where(a < b and c < d or not e > f, 1, 2)"),
    ("where(a<b and (c<d or e>f), 1, 2)", "where(a < b and (c < d or e > f), 1, 2)"),
    ("where(not (a<b and c<d), 1, 2)", "where(not (a < b and c < d), 1, 2)"),
    ("pow(y_pred, 2) + e*pi", "pow(y_pred, 2) + e * pi"),
])
def test_canonical_form_and_round_trip(source, canonical):
    program = parse_source(source)
    assert str(program) == canonical
    assert parse_source(canonical) == program


def test_power_is_right_associative_and_binds_tighter_than_unary_minus():
    body = parse_source("-2^3^2").body
    assert body == Negate(Binary("^", Number("2"), Binary("^", Number("3"), Number("2"))))


def test_double_star_is_power():
    assert parse_source("y_pred**2") == parse_source("y_pred^2")


def test_numbers_in_every_spelling():
    for text in ["2", "0.5", ".5", "1e-7", "1E+3", "3."]:
        assert parse_source(text).body == Number(text)


def test_axis_is_parsed_into_the_call():
    assert parse_source("mean(y_pred, axis=-1)").body == Call("mean", (Name("y_pred"),), (-1,))


def _error(source, kind):
    with pytest.raises(kind) as info:
        lossdsl.compile_expression(source)
    error = info.value
    assert isinstance(error, lossdsl.LossDSLError)
    return error


@pytest.mark.parametrize("source, kind, column, words", [
    ("mean((y_true - y_pred)^2", DSLSyntaxError, 25, "ends too early"),
    ("1 +* 2", DSLSyntaxError, 4, "unexpected '*'"),
    ("x $ 2", DSLSyntaxError, 3, "unexpected '$'"),
    ("mean(lgo(y_pred))", DSLNameError, 6, "Did you mean `log`"),
    ("log(y_pred, 2)", DSLArityError, 1, "takes 1 argument"),
    ("clip(y_pred, 0)", DSLArityError, 1, "takes 3 arguments"),
    ("log(y_pred, axis=1)", DSLArityError, 13, "no keyword argument `axis`"),
    ("mean(y_pred, axis=1.5)", DSLAxisError, 19, "integer"),
    ("mean(y_pred, axis=(1, 1))", DSLAxisError, 14, "repeats"),
    ("y_pred > 0", DSLTypeError, 1, "only allowed as the first argument of `where`"),
    ("1 + (y_true < y_pred)", DSLTypeError, 6, "only allowed"),
    ("where(y_pred, 1, 2)", DSLTypeError, 7, "must be a comparison"),
    ("mean(-alpha*log(y_pred))", DSLNameError, 7, "`alpha` has no value"),
    ("mean(y_pre)", DSLNameError, 6, "Did you mean `y_pred`"),
    ("a = 1; a = 2; a", DSLNameError, 8, "bound twice"),
    ("y_pred = 1; y_pred", DSLNameError, 1, "input"),
    ("log = 1; log", DSLNameError, 1, "function name"),
    ("b = a; a = 1; b", DSLNameError, 5, "before its binding"),
    ("__import__", DSLNameError, 1, "'__'"),
    ("", DSLSyntaxError, 1, "empty"),
    ("where(y_pred and y_true > 0, 1, 2)", DSLTypeError, 7, "`and` applies to conditions"),
    ("where(not y_pred, 1, 2)", DSLTypeError, 11, "`not` applies to conditions"),
    ("mean(y_pred > 0 or y_true > 0)", DSLTypeError, 6, "`or` is only allowed"),
    ("and = 1; and", DSLSyntaxError, 1, "`and` is a keyword"),
    ("mean(or*y_pred)", DSLSyntaxError, 6, "`or` is a keyword"),
    ("where((y_pred < 1) == (y_true < 1), 1, 2)", DSLTypeError, 24, "only allowed"),
])
def test_every_error_kind_has_its_caret(source, kind, column, words):
    error = _error(source, kind)
    assert words in str(error)
    assert error.column == column
    assert error.line == 1
    assert "^" in str(error)


def test_error_on_a_later_line_reports_that_line():
    error = _error("alpha = 0.25;\nmean(lgo(y_pred))", DSLNameError)
    assert (error.line, error.column) == (2, 6)
    assert "mean(lgo(y_pred))" in str(error)


def test_caret_picture_is_exact():
    error = _error("mean(lgo(y_pred))", DSLNameError)
    lines = str(error).splitlines()
    assert lines[2] == "    mean(lgo(y_pred))"
    assert lines[3] == "         ^^^"


def test_unknown_keyword_parameter_is_named():
    with pytest.raises(DSLNameError, match="`alhpa` is not a parameter.*Did you mean `alpha`"):
        lossdsl.compile_expression("mean(-alpha*log(y_pred))", {"alpha": 1.0, "alhpa": 2.0})


@pytest.mark.parametrize("value", ["0.5", None, True, float("nan"), float("inf")])
def test_parameter_values_must_be_finite_numbers(value):
    with pytest.raises(DSLTypeError, match="finite real number"):
        lossdsl.compile_expression("mean(alpha*y_pred)", {"alpha": value})


def test_defaults_and_overrides():
    source = "alpha = 0.25; gamma = -2; mean(-alpha*y_true*log(y_pred)) + gamma"
    assert lossdsl.compile_expression(source).params == {"alpha": 0.25, "gamma": -2.0}
    assert lossdsl.compile_expression(source, {"alpha": 1}).params == {"alpha": 1.0, "gamma": -2.0}


def test_local_definitions_are_not_parameters():
    source = "p = clip(y_pred, 1e-7, 1 - 1e-7); mean(-y_true*log(p))"
    assert lossdsl.compile_expression(source).params == {}
    with pytest.raises(DSLNameError, match="local definition"):
        lossdsl.compile_expression(source, {"p": 0.5})


def test_limits_are_errors_not_crashes():
    with pytest.raises(DSLLimitError, match="nested"):
        parse_source("log(" * 100 + "y_pred" + ")" * 100)
    # Parentheses alone add no depth: thousands of them still parse.
    assert parse_source("(" * 3000 + "y_pred" + ")" * 3000).body == Name("y_pred")
    with pytest.raises(DSLLimitError, match="characters"):
        parse_source("y_pred + " * 2000 + "1")


def test_non_string_source_is_a_lossdsl_error():
    with pytest.raises(DSLSyntaxError, match="must be a string"):
        parse_source(42)


# ---------------------------------------------------------------- conditions

def test_logic_binds_as_in_python_not_then_and_then_or():
    body = parse_source("where(a < 1 or b < 1 and not c < 1, 1, 2)").body.args[0]
    a, b, c = (Compare("<", Name(n), Number("1")) for n in "abc")
    assert body == Logic("or", a, Logic("and", b, Not(c)))


def test_a_chained_comparison_is_the_and_of_its_links():
    chain = parse_source("where(0 < y_pred <= 1 != y_true, 1, 2)").body.args[0]
    low, high = Compare("<", Number("0"), Name("y_pred")), Compare("<=", Name("y_pred"), Number("1"))
    assert chain == Logic("and", Logic("and", low, high), Compare("!=", Number("1"), Name("y_true")))


def test_keywords_are_not_names_but_names_may_contain_them():
    assert parse_source("android + notable + order + e_pi").body is not None


# ---------------------------------------------------------------- constants

def test_pi_and_e_are_constants_unless_a_binding_shadows_them():
    assert lossdsl.compile_expression("mean(e*pi*y_pred)").params == {}
    # A binding shadows a constant for the whole source, as a local name does in Python:
    # the loss library writes `e = y_pred - y_true` for the error.
    assert lossdsl.compile_expression("e = 2; mean(e*y_pred)").params == {"e": 2.0}
    assert lossdsl.compile_expression("e = 2; mean(e*y_pred)", {"e": 3}).params == {"e": 3.0}
    local = lossdsl.compile_expression("e = y_pred - y_true; mean(e^2)")
    assert str(local.expression) == "mean((y_pred - y_true)**2)"
    # No half-shadowing: a use before the binding is an error, never the constant.
    _error("x = 2*e; e = 2; mean(x*y_pred)", DSLNameError)
    with pytest.raises(DSLNameError, match="not a parameter"):
        lossdsl.compile_expression("mean(e*y_pred)", {"e": 3})


# ---------------------------------------------------------------- errors teach the language

@pytest.mark.parametrize("source, kind, words", [
    ("y_pred if y_true > 0 else 1", DSLSyntaxError, "write where(c, a, b)"),
    ("mean(max(y_pred, y_true))", DSLArityError, "use maximum(a, b)"),
    ("mean(min(y_pred, 0))", DSLArityError, "use minimum(a, b)"),
    ("mean(y_pred, -1)", DSLArityError, "axis is a keyword"),
    ("mean(np.log(y_pred))", DSLSyntaxError, "write `log(...)` instead of `np.log(...)`"),
    ("tf.reduce_mean(y_pred)", DSLSyntaxError, "write `mean(...)` instead of `tf.reduce_mean(...)`"),
    ("tf.math.reduce_sum(y_pred)", DSLSyntaxError, "`sum(...)` instead of `tf.math.reduce_sum"),
    ("K.mean(y_pred)", DSLSyntaxError, "write `mean(...)` instead of `K.mean(...)`"),
    ("torch.mean(y_pred)", DSLSyntaxError, "write `mean(...)` instead of `torch.mean(...)`"),
    ("math.log(y_pred)", DSLSyntaxError, "write `log(...)` instead of `math.log(...)`"),
    ("np.frobnicate(y_pred)", DSLSyntaxError, "drop `np.`"),
    ("where(y_pred > 0 && y_true > 0, 1, 2)", DSLSyntaxError, "writes `and`"),
    ("where(y_pred > 0 || y_true > 0, 1, 2)", DSLSyntaxError, "writes `or`"),
])
def test_errors_name_the_lossdsl_spelling(source, kind, words):
    error = _error(source, kind)
    assert words in error.hint, error.hint
    assert error.line == 1 and error.column is not None


@pytest.mark.parametrize("source, ours", [
    ("mean(ln(y_pred))", "log"), ("reduce_mean(y_pred)", "mean"), ("mean(gammaln(y_pred))", "lgamma"),
    ("mean(clip_by_value(y_pred, 0, 1))", "clip"), ("mean(power(y_pred, 2))", "pow"),
])
def test_an_unknown_function_another_library_names_gets_the_lossdsl_name(source, ours):
    error = _error(source, DSLNameError)
    assert f"lossdsl calls it `{ours}`" in error.message


def test_log10_and_friends_exist_so_nothing_suggests_log1p_for_them():
    for name in ("log10", "log2", "sinh", "erf", "erfc", "lgamma", "stop_gradient"):
        assert lossdsl.compile_expression(f"mean({name}(y_pred + 2))").expression is not None
    assert "Did you mean `log10`" in _error("mean(lg10(y_pred))", DSLNameError).message


def test_every_foreign_name_points_at_a_function_of_the_language():
    from lossdsl.language.hints import ELEMENTWISE_TWINS, FOREIGN_NAMES
    from lossdsl.ops import REGISTRY

    assert set(FOREIGN_NAMES.values()) | set(ELEMENTWISE_TWINS.values()) <= set(REGISTRY)
    assert not set(FOREIGN_NAMES) & set(REGISTRY)  # a real function is never redirected
