r"""Safe, bounded polynomials with rational coefficients (private).

:func:`parse_polynomial` reads polynomial syntax (numbers, variables, ``+ - * / ** ^`` and
parentheses) with a small recursive-descent parser — never ``eval`` or ``sympify`` — and expands
it in exact rational arithmetic while checking, *before* each operation, the limits of
:mod:`fieldcurve._limits`: total degree (and every exponent) at most ``MAX_POLY_DEGREE``, at most
``MAX_POLY_TERMS`` terms in any intermediate result (and at most ``MAX_POLY_TERMS``² products in
one multiplication), coefficients of at most ``MAX_POLY_COEFF_BITS`` bits, ``MAX_POLY_CHARS``
characters and ``MAX_POLY_NESTING`` levels of parentheses. So ``9**9**9**9``, ``x1**100000`` and
``(x1+x2+x3+x4)**60`` are refused by a ``ValueError`` that names the limit, at a cost proportional
to the input. :func:`from_sympy` converts a sympy expression under the same limits (walking its
tree, without ``expand``).

:func:`sphere_powers` returns the exact power per degree :math:`\lVert\Pi_l f\rVert^2` of such a
polynomial on the :math:`\sqrt d`-sphere (harmonic projection; see
:meth:`fieldcurve.Target.from_polynomial`).

A polynomial is a ``dict`` from exponent tuples (one entry per variable, in a fixed order) to
non-zero :class:`fractions.Fraction` coefficients.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from fieldcurve._limits import (
    MAX_POLY_CHARS,
    MAX_POLY_COEFF_BITS,
    MAX_POLY_DEGREE,
    MAX_POLY_NESTING,
    MAX_POLY_TERMS,
)

__all__ = ["from_sympy", "parse_polynomial", "sphere_powers", "to_sympy"]

Poly = dict[tuple[int, ...], Fraction]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|[-+*/^()]))"
)
_MAX_LITERAL_EXPONENT = 300  # 1e300: decimal exponents of number literals


def _degree(p: Poly) -> int:
    return max((sum(e) for e in p), default=0)


def _bits(c: Fraction) -> int:
    return max(c.numerator.bit_length(), c.denominator.bit_length())


def _check_bits(p: Poly, what: str) -> Poly:
    for c in p.values():
        if _bits(c) > MAX_POLY_COEFF_BITS:
            raise ValueError(
                f"polynomial: a coefficient of {what} has more than {MAX_POLY_COEFF_BITS} bits (limit)"
            )
    return p


def _put(out: dict, e: tuple[int, ...], v: Fraction | int) -> None:
    """``out[e] += v``, dropping the term when it cancels."""
    s = out.get(e, 0) + v
    if s:
        out[e] = s
    else:
        out.pop(e, None)


def _add_raw(a: dict, b: dict, sign: int) -> dict:
    out = dict(a)
    for e, c in b.items():
        _put(out, e, sign * c)
    return out


def _add(a: Poly, b: Poly, sign: int = 1) -> Poly:
    out = _add_raw(a, b, sign)
    if len(out) > MAX_POLY_TERMS:
        raise ValueError(f"polynomial: more than {MAX_POLY_TERMS} terms (limit)")
    return _check_bits(out, "a sum")


def _mul(a: Poly, b: Poly) -> Poly:
    deg = _degree(a) + _degree(b) if a and b else 0
    if deg > MAX_POLY_DEGREE:
        raise ValueError(f"polynomial: total degree {deg} exceeds the limit {MAX_POLY_DEGREE}")
    if len(a) * len(b) > MAX_POLY_TERMS**2:
        raise ValueError(
            f"polynomial: a product of {len(a)} by {len(b)} terms exceeds the limit of"
            f" {MAX_POLY_TERMS}^2 products"
        )
    if a and b and max(map(_bits, a.values())) + max(map(_bits, b.values())) > MAX_POLY_COEFF_BITS + 64:
        raise ValueError(f"polynomial: a coefficient would exceed {MAX_POLY_COEFF_BITS} bits (limit)")
    out: dict[tuple[int, ...], Fraction] = {}
    for ea, ca in a.items():
        for eb, cb in b.items():
            _put(out, tuple(i + j for i, j in zip(ea, eb, strict=True)), ca * cb)
        if len(out) > MAX_POLY_TERMS:
            raise ValueError(f"polynomial: more than {MAX_POLY_TERMS} terms in an expansion (limit)")
    return _check_bits(out, "a product")


def _pow(a: Poly, e: Poly, n: int) -> Poly:
    zero = (0,) * n
    if any(k != zero for k in e):
        raise ValueError("polynomial: an exponent must be a number, not contain a variable")
    c = e.get(zero, Fraction(0))
    if c.denominator != 1 or c < 0:
        raise ValueError(f"polynomial: exponents must be non-negative integers, got {c}")
    k = int(c)
    if k > MAX_POLY_DEGREE:
        raise ValueError(f"polynomial: exponent {k} exceeds the limit {MAX_POLY_DEGREE}")
    deg = _degree(a)
    if deg * k > MAX_POLY_DEGREE:
        raise ValueError(
            f"polynomial: total degree {deg * k} (degree {deg} to the power {k}) exceeds the"
            f" limit {MAX_POLY_DEGREE}"
        )
    if a and max(map(_bits, a.values())) * k > MAX_POLY_COEFF_BITS + 64:
        raise ValueError(f"polynomial: a coefficient would exceed {MAX_POLY_COEFF_BITS} bits (limit)")
    out: Poly = {zero: Fraction(1)}
    for _ in range(k):
        out = _mul(out, a)
    return out


class _Parser:
    def __init__(self, text: str, variables: dict[str, int], n: int) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.vars = variables
        self.n = n
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expr(self) -> Poly:
        out = self.term()
        while self.peek() in ("+", "-"):
            sign = 1 if self.take()[1] == "+" else -1
            out = _add(out, self.term(), sign)
        return out

    def term(self) -> Poly:
        out = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            rhs = self.unary()
            if op == "*":
                out = _mul(out, rhs)
            else:
                zero = (0,) * self.n
                if any(k != zero for k in rhs):
                    raise ValueError("polynomial: division only by a number (x1/x2 is not a polynomial)")
                c = rhs.get(zero, Fraction(0))
                if c == 0:
                    raise ValueError("polynomial: division by zero")
                out = _check_bits({k: v / c for k, v in out.items()}, "a quotient")
        return out

    def unary(self) -> Poly:
        if self.peek() in ("+", "-"):
            sign = self.take()[1]
            self._enter()
            inner = self.unary()
            self.depth -= 1
            return inner if sign == "+" else {k: -v for k, v in inner.items()}
        return self.power()

    def power(self) -> Poly:
        base = self.atom()
        if self.peek() in ("**", "^"):
            self.take()
            self._enter()
            exponent = self.unary()  # right-associative, like Python
            self.depth -= 1
            return _pow(base, exponent, self.n)
        return base

    def atom(self) -> Poly:
        if self.i >= len(self.tokens):
            raise ValueError("polynomial: unexpected end of the expression")
        kind, text = self.take()
        zero = (0,) * self.n
        if kind == "num":
            value = _number(text)
            return {zero: value} if value else {}
        if kind == "name":
            e = [0] * self.n
            e[self.vars[text]] = 1
            return {tuple(e): Fraction(1)}
        if text == "(":
            self._enter()
            out = self.expr()
            self.depth -= 1
            if self.peek() != ")":
                raise ValueError("polynomial: unbalanced parentheses")
            self.take()
            return out
        raise ValueError(f"polynomial: unexpected {text!r}")

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_POLY_NESTING:
            raise ValueError(f"polynomial: nested more than {MAX_POLY_NESTING} levels deep (limit)")


def _number(text: str) -> Fraction:
    m = re.fullmatch(r"([^eE]*)(?:[eE]([+-]?\d+))?", text)
    assert m is not None
    mantissa, exp = m.group(1), int(m.group(2) or 0)
    if abs(exp) > _MAX_LITERAL_EXPONENT or len(mantissa) > 60:
        raise ValueError(f"polynomial: the number {text!r} is too long or too large (limit 60 digits, 1e300)")
    return Fraction(mantissa) * Fraction(10) ** exp


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(
                f"polynomial: unexpected character {text[pos:].lstrip()[:1]!r}; a polynomial may contain"
                " only numbers, its variables, + - * / ** ^ and parentheses"
            )
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_polynomial(
    text: str, variable: Callable[[str], Any], *, name: str = "polynomial"
) -> tuple[Poly, list[Any]]:
    """Parse and expand ``text`` under the limits of :mod:`fieldcurve._limits`.

    Parameters
    ----------
    text
        Polynomial syntax: numbers (``2``, ``0.5``, ``1e-3``), variable names, ``+ - * /``,
        ``**`` or ``^`` with a non-negative integer exponent, and parentheses. Division only
        by a non-zero number.
    variable
        Maps a name to a sortable key, or raises ``ValueError`` for an unknown name.
    name
        Used in error messages (the parameter's name).

    Returns
    -------
    (poly, keys)
        The expanded polynomial over the sorted keys of the variables that occur.

    Raises
    ------
    ValueError
        Bad syntax, an unknown variable, a non-polynomial operation, or a limit exceeded (the
        message names it).
    TypeError
        If ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string, got {type(text).__name__}")
    try:
        if len(text) > MAX_POLY_CHARS:
            raise ValueError(f"polynomial: longer than {MAX_POLY_CHARS} characters (limit)")
        tokens = _tokens(text)
        if not tokens:
            raise ValueError("polynomial: empty expression")
        keys = sorted({variable(t) for kind, t in tokens if kind == "name"})
        index = {k: i for i, k in enumerate(keys)}
        names = {t: index[variable(t)] for kind, t in tokens if kind == "name"}
        parser = _Parser(text, names, len(keys))
        poly = parser.expr()
        if parser.i != len(parser.tokens):
            raise ValueError(f"polynomial: unexpected {parser.tokens[parser.i][1]!r}")
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(name + msg[len("polynomial") :] if msg.startswith("polynomial") else msg) from None
    return poly, keys


def from_sympy(
    expr: Any, variable: Callable[[str], Any], *, name: str = "polynomial"
) -> tuple[Poly, list[Any]]:
    """Convert a sympy expression to a polynomial under the same limits, walking its tree (no
    ``expand``): rational (or float) coefficients, symbols through ``variable``, integer powers."""
    import sympy

    keys = sorted({variable(s.name) for s in expr.free_symbols})
    index = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    zero = (0,) * n
    depth = 0

    def walk(e: Any) -> Poly:
        nonlocal depth
        depth += 1
        if depth > 10 * MAX_POLY_NESTING:
            raise ValueError(f"{name}: expression nested too deeply (limit)")
        try:
            if isinstance(e, sympy.Symbol):
                v = [0] * n
                v[index[variable(e.name)]] = 1
                return {tuple(v): Fraction(1)}
            if isinstance(e, sympy.Rational):
                c = Fraction(int(e.p), int(e.q))
                return _check_bits({zero: c}, "a number") if c else {}
            if isinstance(e, sympy.Float):
                c = Fraction(float(e))
                return {zero: c} if c else {}
            if isinstance(e, sympy.Add):
                out: Poly = {}
                for arg in e.args:
                    out = _add(out, walk(arg))
                return out
            if isinstance(e, sympy.Mul):
                out = {zero: Fraction(1)}
                for arg in e.args:
                    out = _mul(out, walk(arg))
                return out
            if isinstance(e, sympy.Pow):
                base, exp = e.args
                if not isinstance(exp, sympy.Integer):
                    raise ValueError(f"{name}: exponents must be non-negative integers, got {exp}")
                return _pow(walk(base), {zero: Fraction(int(exp))} if exp else {}, n)
            raise ValueError(f"{name}: not a polynomial with rational coefficients: {e}")
        finally:
            depth -= 1

    try:
        return walk(sympy.sympify(expr, strict=True)), keys
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(name + msg[len("polynomial") :] if msg.startswith("polynomial") else msg) from None


def to_sympy(poly: Poly, symbols: Sequence[Any]) -> Any:
    """The polynomial as a sympy expression in ``symbols``."""
    import sympy

    terms = []
    for e, c in poly.items():
        mon = sympy.Rational(c.numerator, c.denominator)
        for s, k in zip(symbols, e, strict=True):
            if k:
                mon *= s**k
        terms.append(mon)
    return sympy.Add(*terms)


# ----------------------------------------------------------------------------- sphere powers
def _laplacian(p: dict[tuple[int, ...], Fraction], d: int) -> dict[tuple[int, ...], Fraction]:
    r"""Laplacian in R^d of :math:`\sum c\,R^j x^a` (last exponent j: :math:`R = |x|^2` over all d
    coordinates): :math:`\Delta(R^jm) = (2jd + 4j(j-1) + 4j\deg m)R^{j-1}m + R^j\Delta m`."""
    out: dict[tuple[int, ...], Fraction] = {}
    for e, c in p.items():
        *a, j = e
        deg = sum(a)
        if j:
            _put(out, (*a, j - 1), c * (2 * j * d + 4 * j * (j - 1) + 4 * j * deg))
        for i, ai in enumerate(a):
            if ai >= 2:
                b = list(a)
                b[i] -= 2
                _put(out, (*b, j), c * ai * (ai - 1))
    return out


def _harmonic_parts(p: dict[tuple[int, ...], Fraction], m: int, d: int) -> dict[int, Poly]:
    r"""Split a homogeneous polynomial of degree m (exponents with a trailing R power) into
    :math:`\sum_k |x|^{2k}h_{m-2k}` and return :math:`d^k h_{m-2k}` on the sphere (R = d)."""
    parts: dict[int, Poly] = {}
    scale = Fraction(1)
    half = Fraction(d, 2)
    while m >= 0 and p:
        h: dict[tuple[int, ...], Fraction] = {}
        lap, j, coef = p, 0, Fraction(1)
        while lap:
            for e, c in lap.items():
                _put(h, (*e[:-1], e[-1] + j), coef * c)
            lap = _laplacian(lap, d)
            j += 1
            if lap:  # (-1)^j Gamma(d/2 + m - 1 - j) / (4^j j! Gamma(d/2 + m - 1)), j <= m/2
                coef = coef * -1 / (4 * j * (half + m - 1 - j))
        on_sphere: Poly = {}
        for e, c in h.items():
            _put(on_sphere, tuple(e[:-1]), c * scale * Fraction(d) ** e[-1])
        parts[m] = on_sphere
        rest = _add_raw(p, h, -1)
        if not rest:
            break
        if any(e[-1] == 0 for e in rest):  # pragma: no cover - guaranteed by the projection
            raise AssertionError("harmonic decomposition failed")
        p = {(*e[:-1], e[-1] - 1): c for e, c in rest.items()}
        m, scale = m - 2, scale * d
    return parts


def _sphere_moment(e: tuple[int, ...], d: int, cache: dict) -> Fraction:
    r""":math:`\mathbb E\prod_i x_i^{e_i}` on the :math:`\sqrt d`-sphere (all :math:`e_i` even):
    :math:`d^k\prod_i(e_i-1)!!/\prod_{s<k}(d+2s)`, k = |e|/2."""
    key = tuple(sorted(e))
    if key not in cache:
        k = sum(e) // 2
        num = Fraction(d) ** k
        for ei in e:
            for t in range(ei - 1, 0, -2):
                num *= t
        den = 1
        for s in range(k):
            den *= d + 2 * s
        cache[key] = num / den
    return cache[key]


def sphere_powers(poly: Poly, d: int) -> tuple[dict[int, Fraction], dict[int, Poly]]:
    r"""Exact power per degree :math:`\lVert\Pi_lf\rVert^2` (uniform probability measure on the
    :math:`\sqrt d`-sphere) of a polynomial, and its harmonic part of each degree (on the sphere).

    Every degree from 0 to the polynomial's total degree that has a harmonic part is returned."""
    by_degree: dict[int, Poly] = {}
    homogeneous: dict[int, dict[tuple[int, ...], Fraction]] = {}
    for e, c in poly.items():
        homogeneous.setdefault(sum(e), {})[(*e, 0)] = c
    for m in sorted(homogeneous, reverse=True):
        for l, h in _harmonic_parts(homogeneous[m], m, d).items():
            by_degree[l] = _add_raw(by_degree.get(l, {}), h, 1)
    cache: dict = {}
    powers: dict[int, Fraction] = {}
    for l in sorted(by_degree):
        h = by_degree[l]
        # integer coefficients over a common denominator; the pair products are summed per
        # moment (sorted exponent multiset) in integers, then weighted by the exact moments
        den = math.lcm(*(c.denominator for c in h.values())) if h else 1
        classes: dict[tuple[int, ...], list[tuple[tuple[int, ...], int]]] = {}
        for e, c in h.items():
            classes.setdefault(tuple(k % 2 for k in e), []).append((e, int(c * den)))
        sums: dict[tuple[int, ...], int] = {}
        for members in classes.values():
            for i, (ea, ca) in enumerate(members):
                key = tuple(sorted(2 * k for k in ea))
                sums[key] = sums.get(key, 0) + ca * ca
                for eb, cb in members[i + 1 :]:
                    key = tuple(sorted(x + y for x, y in zip(ea, eb, strict=True)))
                    sums[key] = sums.get(key, 0) + 2 * ca * cb
        total = sum((v * _sphere_moment(k, d, cache) for k, v in sums.items() if v), Fraction(0))
        powers[l] = total / (den * den)
    return powers, by_degree
