"""The stability rewrite rules, in the order they are tried (:data:`RULES`).

Rules whose pattern *contains* a pattern of another rule (``log(1 - sigmoid(x))``
contains ``1 - sigmoid(x)``) are tried on the way down, before the node's
arguments are rewritten; the rest are tried on the way up (their ``phases``).
The matchers are in :mod:`lossdsl.symbolic.rules_exp_log` and
:mod:`lossdsl.symbolic.rules_guards`; the engine is :mod:`lossdsl.symbolic.stability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sympy

from lossdsl.ops import log1p, sigmoid, softplus, xlog1py, xlogy
from lossdsl.symbolic.rules_exp_log import (Match, _exp_minus_one, _exp_over_one_plus_exp,
                                            _log_cosh, _log_one_minus_sigmoid, _log_one_plus,
                                            _log_one_plus_exp, _log_sigmoid, _log_softmax,
                                            _log_sum_exp, _one_minus_sigmoid, _pair,
                                            _reciprocal_one_plus_exp, _sign_times_tanh_abs,
                                            _softmax, _tanh_from_sigmoid)
from lossdsl.symbolic.rules_guards import _cancel_power_division, _combine_powers, _times_log

Phase = Literal["pre", "post"]


@dataclass(frozen=True)
class Rule:
    """One stability rewrite.

    Attributes:
        name: how the rule is reported (``Analysis.rewrites``).
        pattern: what it does, for people: ``"log(sigmoid(x)) -> -softplus(-x)"``.
        heads: the SymPy node types it can match (a quick filter).
        match: returns the rewritten node, or None when the node does not match.
        phases: ``"pre"``: tried before the node's arguments are rewritten;
            ``"post"``: after.
    """

    name: str
    pattern: str
    heads: tuple[type, ...]
    match: Match
    phases: tuple[Phase, ...] = ("pre", "post")


RULES: tuple[Rule, ...] = (
    Rule("log_one_minus_sigmoid", "log(1 - sigmoid(x)), log1p(-sigmoid(x)) -> -softplus(x)",
         (sympy.log, log1p), _log_one_minus_sigmoid),
    Rule("log_sigmoid", "log(sigmoid(x)) -> -softplus(-x)", (sympy.log,), _log_sigmoid),
    Rule("log_one_plus_exp", "log(1 + exp(x)), log1p(exp(x)) -> softplus(x)",
         (sympy.log, log1p), _log_one_plus_exp),
    Rule("log_softmax", "log(exp(x)/sum(exp(x))) -> x - logsumexp(x)", (sympy.log,),
         _log_softmax),
    Rule("log_sum_exp", "log(sum(exp(x))) -> logsumexp(x)", (sympy.log,), _log_sum_exp),
    Rule("log_cosh", "log(cosh(x)) -> abs(x) + softplus(-2*abs(x)) - log(2)", (sympy.log,), _log_cosh),
    Rule("exp_over_one_plus_exp", "exp(x)/(1 + exp(x)) -> sigmoid(x)", (sympy.Mul,),
         _exp_over_one_plus_exp),
    Rule("softmax", "exp(x)/sum(exp(x)) -> exp(x - logsumexp(x))", (sympy.Mul,), _softmax),
    # Only on the way up: log(1 - 1/(1 + exp(-x))) must first become log(sigmoid(-x)).
    Rule("log_one_plus", "log(1 + x) -> log1p(x)", (sympy.log,), _log_one_plus,
         phases=("post",)),
    Rule("one_minus_sigmoid", "1 - sigmoid(x) -> sigmoid(-x) (also 1 - y*sigmoid(x) - (1-y)*sigmoid(-x))",
         (sympy.Add,), _one_minus_sigmoid),
    Rule("sigmoid_pair", "a*sigmoid(-x) + b*sigmoid(x) -> (b-a)*sigmoid(x) + a, b-a a number",
         (sympy.Add,), _pair(sigmoid, lambda a, z: (-1, a))),
    Rule("softplus_pair", "a*softplus(-x) + b*softplus(x) -> (a+b)*softplus(x) - a*x, a+b a number",
         (sympy.Add,), _pair(softplus, lambda a, z: (1, -a * z))),
    Rule("combine_powers", "b**g/b -> b**(g-1)", (sympy.Mul,), _combine_powers),
    Rule("cancel_power_division", "b**g*(u/b + v) -> u*b**(g-1) + v*b**g", (sympy.Mul,),
         _cancel_power_division),
    Rule("tanh", "1 - 2*sigmoid(-2x) -> tanh(x)", (sympy.Add,), _tanh_from_sigmoid),
    Rule("sign_times_tanh_abs", "sign(x)*tanh(abs(x)) -> tanh(x)", (sympy.Mul,),
         _sign_times_tanh_abs),
    Rule("exp_minus_one", "exp(x) - 1 -> expm1(x), 1 - exp(x) -> -expm1(x)", (sympy.Add,),
         _exp_minus_one),
    Rule("reciprocal_one_plus_exp", "1/(1 + exp(x)) -> sigmoid(-x)", (sympy.Pow,),
         _reciprocal_one_plus_exp),
    # x*log(y) only after y itself is rewritten: log(sigmoid(z)) must become softplus first.
    Rule("xlogy", "x*log(y) -> xlogy(x, y), 0 where x is 0", (sympy.Mul,),
         _times_log(sympy.log, xlogy), phases=("post",)),
    Rule("xlog1py", "x*log1p(y) -> xlog1py(x, y), 0 where x is 0", (sympy.Mul,),
         _times_log(log1p, xlog1py), phases=("post",)),
)
