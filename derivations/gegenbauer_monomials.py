"""Gegenbauer expansion of t^n on the sphere sqrt(d) S^{d-1}: the eigenvalues of polynomial kernels.

Derivation. For a dot-product kernel k(t), t = x.x'/d, the Funk–Hecke formula (Atkinson & Han,
*Spherical Harmonics and Approximations on the Unit Sphere*, 2012, ch. 2) gives the eigenvalue
of degree l (uniform probability measure, multiplicity N(d, l)) as

    lambda_l = c_d * int_{-1}^{1} k(t) P_l(t) (1 - t^2)^{(d-3)/2} dt,
    c_d = Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)),

with P_l the Gegenbauer polynomial C_l^{(d-2)/2} normalised to P_l(1) = 1. The Rodrigues formula
(Atkinson & Han 2012, ch. 2; checked below against the library's three-term recurrence)

    P_l(t) = (-1/2)^l / ((d-1)/2)_l * (1-t^2)^{(3-d)/2} D^l (1-t^2)^{l+(d-3)/2}

and l integrations by parts (the boundary terms vanish) turn the integral for k = t^n into a Beta
integral, so that (k = (n-l)/2, zero unless n - l is even and >= 0)

    mu_{l,n} = c_d 2^{-l} n!/(n-l)! * B(k + 1/2, l + (d-1)/2) / ((d-1)/2)_l
             = n! Gamma(d/2) Gamma((n-l+1)/2) / (sqrt(pi) 2^l (n-l)! Gamma((n+l+d)/2)).

Asserts:
  1. the Rodrigues formula reproduces the library's three-term recurrence for P_l (l <= 6), and
     the library's multiplicity formula matches the symbolic N(d, l), symbolically in d;
  2. the derived mu_{l,n} equals ``fc.symbolic_spectrum(t**n, d, lmax)`` exactly, symbolically in d
     (n <= 9), and the gamma form in the library's docstring;
  3. independent direct Funk–Hecke integrals (in theta = arccos t) at d = 2..7 equal
     ``fc.symbolic_spectrum`` at those d exactly (rationals), n <= 6;
  4. t^n = sum_l N(d,l) mu_{l,n} P_l(t) identically in t and d (n <= 8), hence the trace identity
     sum_l N(d,l) lambda_l = k(1) for every polynomial kernel;
  5. numerically, ``fc.spectrum(fc.polynomial_kernel(b), d, lmax)`` (default series route) equals
     sum_n b_n mu_{l,n} to 1e-12 relative (exact zeros exactly), its quadrature route to
     1e-12 k(1) absolute, ``monomial_log_eigenvalues`` to 1e-13 relative, and the trace
     sum_l N(d,l) lambda_l = k(1) to 1e-13 with tail_mass below 1e-13, for d = 3, 10, 100, 1000.
"""

import math
import time

import numpy as np
import sympy as sp

import fieldcurve as fc
from fieldcurve.spectrum import monomial_log_eigenvalues

start = time.perf_counter()
t = sp.Symbol("t")  # the library parses polynomials in the plain symbol t
d = sp.Symbol("d", positive=True)
theta = sp.Symbol("theta", real=True)


QQd = sp.QQ.frac_field(d)  # rational functions of d: exact and fast polynomial arithmetic in t


def as_poly(expr):
    return sp.Poly(expr, t, domain=QQd)


def recurrence_legendre(lmax, dim):
    """P_0..P_lmax by the recurrence used in fieldcurve.sphere.legendre (any dim, symbolic or int)."""
    if dim == d:
        P = [as_poly(1), as_poly(t)]
        for k in range(1, lmax):
            P.append((as_poly((2 * k + d - 2) * t) * P[k] - P[k - 1] * k) * as_poly(1 / (k + d - 2)))
        return P[: lmax + 1]
    P = [sp.Integer(1), t]
    for k in range(1, lmax):
        P.append(sp.expand(((2 * k + dim - 2) * t * P[k] - k * P[k - 1]) / (k + dim - 2)))
    return P[: lmax + 1]


def multiplicity_symbolic(l, dim):
    """N(d, l) = (2l+d-2)/l * binom(l+d-3, l-1), with the binomial as a rising factorial."""
    if l == 0:
        return sp.Integer(1)
    return (2 * l + dim - 2) / sp.Integer(l) * sp.rf(dim - 1, l - 1) / sp.factorial(l - 1)


# ---------------------------------------------------------------- 1. Rodrigues formula
# D(Q w^c) = (Q' w - 2 c t Q) w^(c-1) with w = 1 - t^2: check this product-rule step once.
c = sp.Symbol("c")
Q = sp.Function("Q")(t)
w = 1 - t**2
step = sp.diff(Q * w**c, t) - (sp.diff(Q, t) * w - 2 * c * t * Q) * w ** (c - 1)
assert sp.simplify(sp.powsimp(sp.expand(step / w ** (c - 1)), force=True)) == 0


def rodrigues(l):
    """(-1/2)^l/((d-1)/2)_l (1-t^2)^{(3-d)/2} D^l (1-t^2)^{l+(d-3)/2}, as a polynomial in t."""
    q, expo, wp = as_poly(1), l + (d - 3) / 2, as_poly(w)
    for _ in range(l):  # D(q w^expo) = (q' w - 2 expo t q) w^(expo-1): the power of w drops by one
        q = q.diff(t) * wp - as_poly(2 * expo * t) * q
        expo -= 1
    # expo is now (d-3)/2, which cancels the prefactor (1-t^2)^{(3-d)/2}
    return q * as_poly((-sp.Rational(1, 2)) ** l / sp.rf((d - 1) / 2, l))


LMAX_SYM = 6
P_sym = recurrence_legendre(LMAX_SYM, d)
for l in range(LMAX_SYM + 1):
    assert rodrigues(l) == P_sym[l], l
    assert sp.cancel(P_sym[l].eval(1)) == 1
    for dd in (2, 3, 7, 30):
        assert multiplicity_symbolic(l, sp.Integer(dd)) == fc.multiplicity(dd, l)
print(f"Rodrigues formula == recurrence for l <= {LMAX_SYM} (symbolic d)")

# ---------------------------------------------------------------- 2. mu_{l,n} from the Beta integral
u = sp.Symbol("u", positive=True)
ks, a = sp.symbols("k a", positive=True)
# int_{-1}^{1} t^{2k} (1-t^2)^a dt = int_0^1 u^{k-1/2} (1-u)^a du   (u = t^2, even integrand)
beta = sp.hyperexpand(sp.integrate(u ** (ks - sp.S.Half) * (1 - u) ** a, (u, 0, 1), conds="none"))
assert (
    sp.simplify(beta - sp.gamma(ks + sp.S.Half) * sp.gamma(a + 1) / sp.gamma(a + ks + sp.Rational(3, 2))) == 0
)
c_d = sp.gamma(d / 2) / (sp.sqrt(sp.pi) * sp.gamma((d - 1) / 2))


def mu_derived(l, n):
    """c_d (1/2)^l/((d-1)/2)_l * [D^l t^n] integrated against (1-t^2)^{l+(d-3)/2}."""
    if n < l or (n - l) % 2:
        return sp.Integer(0)
    k = (n - l) // 2
    integral = beta.subs({ks: k, a: l + (d - 3) / 2})
    return c_d * sp.Rational(1, 2**l) / sp.rf((d - 1) / 2, l) * sp.ff(n, l) * integral


def mu_docstring(l, n):
    """The gamma form quoted in fieldcurve/spectrum.py's module docstring."""
    if n < l or (n - l) % 2:
        return sp.Integer(0)
    return (
        sp.factorial(n)
        * sp.gamma(d / 2)
        * sp.gamma(sp.Rational(n - l + 1, 2))
        / (sp.sqrt(sp.pi) * 2**l * sp.factorial(n - l) * sp.gamma((n + l + d) / 2))
    )


NMAX_SYM = 9
mu = {}
for n in range(NMAX_SYM + 1):
    lib = fc.symbolic_spectrum(t**n, d, n)
    for l in range(n + 1):
        mu[l, n] = sp.factor(sp.gammasimp(mu_derived(l, n)))
        assert sp.simplify(mu[l, n] - lib[l]) == 0, (l, n, mu[l, n], lib[l])
        assert sp.simplify(sp.gammasimp(mu_docstring(l, n) - mu[l, n])) == 0, (l, n)
print(f"mu_(l,n) (Beta integral) == fc.symbolic_spectrum(t**n, d, n) for n <= {NMAX_SYM}, symbolic d")
print("  e.g. mu_(0,2) =", mu[0, 2], "; mu_(2,4) =", mu[2, 4], "; mu_(3,5) =", mu[3, 5])

# ---------------------------------------------------------------- 3. direct integrals at fixed d
_moment_cache = {}


def moment(m, dd):
    """c_d int_0^pi cos^m(theta) sin^{d-2}(theta) d theta = E[t^m] under the Funk–Hecke weight."""
    if (m, dd) not in _moment_cache:
        cdd = sp.gamma(sp.Rational(dd, 2)) / (sp.sqrt(sp.pi) * sp.gamma(sp.Rational(dd - 1, 2)))
        val = sp.integrate(sp.cos(theta) ** m * sp.sin(theta) ** (dd - 2), (theta, 0, sp.pi))
        _moment_cache[m, dd] = sp.simplify(cdd * val)
        assert _moment_cache[m, dd].is_Rational, (m, dd, _moment_cache[m, dd])
    return _moment_cache[m, dd]


NMAX_DIRECT = 6
for dd in range(2, 8):
    P_d = recurrence_legendre(NMAX_DIRECT, sp.Integer(dd))
    for n in range(NMAX_DIRECT + 1):
        lib = fc.symbolic_spectrum(t**n, dd, n)
        for l in range(n + 1):
            poly = sp.Poly(sp.expand(t**n * P_d[l]), t)
            direct = sum((coef * moment(mon[0], dd) for mon, coef in poly.terms()), sp.Integer(0))
            assert direct.is_Rational and direct == lib[l], (dd, l, n, direct, lib[l])
print(f"direct Funk–Hecke integrals == fc.symbolic_spectrum exactly, d = 2..7, n <= {NMAX_DIRECT}")

# ---------------------------------------------------------------- 4. expansion identity and trace
P_sym = recurrence_legendre(8, d)
for n in range(9):
    expansion = as_poly(0)
    for l in range(n + 1):
        expansion += P_sym[l] * as_poly(multiplicity_symbolic(l, d) * mu[l, n])
    assert expansion == as_poly(t**n), n
    trace = sum(multiplicity_symbolic(l, d) * mu[l, n] for l in range(n + 1))
    assert sp.cancel(trace - 1) == 0, n
print("t^n == sum_l N(d,l) mu_(l,n) P_l(t) and sum_l N(d,l) mu_(l,n) == 1 for n <= 8 (symbolic d)")

# ---------------------------------------------------------------- 5. numeric library spectrum
b = [0.2, 0.5, 0.0, 0.25, 0.05, 0.1, 0.0, 0.02]  # k(t) = sum b_n t^n, k(1) = 1.12
k1 = sum(b)
LMAX = 9
worst = 0.0
for dd in (3, 10, 100, 1000):
    mu_d = [fc.symbolic_spectrum(t**n, dd, LMAX) for n in range(len(b))]  # exact rationals
    exact = [
        sum(sp.Rational(bn).limit_denominator(10**6) * mu_d[n][l] for n, bn in enumerate(b) if bn)
        for l in range(LMAX + 1)
    ]
    exact = np.array([float(x) for x in exact])
    kernel = fc.polynomial_kernel(b)
    spec = fc.spectrum(kernel, dd, LMAX)
    nz = exact > 0
    rel = np.abs(spec.eigenvalues[nz] - exact[nz]) / exact[nz]
    worst = max(worst, float(rel.max()))
    assert rel.max() < 1e-12, (dd, rel)
    assert np.all(spec.eigenvalues[~nz] == 0.0), (dd, spec.eigenvalues)
    trace = float(np.sum(spec.multiplicities * spec.eigenvalues))
    assert abs(trace - k1) < 1e-13 * k1 and abs(spec.kernel_at_one - k1) < 1e-15, (dd, trace)
    assert abs(spec.tail_mass) < 1e-13, spec.tail_mass
    quad = fc.spectrum(kernel, dd, LMAX, method="quadrature")
    assert np.max(np.abs(quad.eigenvalues - exact)) < 1e-12 * k1, (dd, quad.eigenvalues - exact)
    log_mu = monomial_log_eigenvalues(dd, LMAX, len(b) - 1)
    for l in range(LMAX + 1):
        for n in range(len(b)):
            ex = float(mu_d[n][l])
            if ex == 0:
                assert log_mu[l, n] == -np.inf
            else:
                assert abs(math.exp(log_mu[l, n]) / ex - 1) < 1e-13, (dd, l, n)
print(f"fc.spectrum(polynomial_kernel) == exact eigenvalues, worst relative error {worst:.1e}; trace == k(1)")
print(f"time {time.perf_counter() - start:.1f} s")
print("OK: gegenbauer_monomials")
