"""Dual activations E[phi(u) phi(v)] and E[phi'(u) phi'(v)] of ReLU (arc-cosine) and erf.

(u, v) ~ N(0, [[k11, k12], [k12, k22]]), rho = cos(alpha) = k12 / sqrt(k11 k22).

ReLU and the whole family phi(x) = a min(x, 0) + b max(x, 0) (Cho & Saul 2009, "Kernel methods for
deep learning", arc-cosine kernel of degree 1): write u = sqrt(k11) z1, v = sqrt(k22)(rho z1 +
sin(alpha) z2) and go to polar coordinates z = r (cos p, sin p). Then u ∝ r cos p and
v ∝ r cos(p - alpha); the signs of u and v split the circle into four arcs, the radial integrals
are int r^3 e^{-r^2/2} dr = 2 (for phi phi) and int r e^{-r^2/2} dr = 1 (for phi' phi'), and the
angular integrals are elementary. Result (theta = alpha = arccos rho):

    E[phi phi]   = (a-b)^2/(2 pi) sqrt(k11 k22 - k12^2) + [(a^2+b^2)/2 - (a-b)^2 theta/(2 pi)] k12,
    E[phi' phi'] = (a^2+b^2)/2 - (a-b)^2 theta/(2 pi)          (ReLU: (pi - theta)/(2 pi)).

erf (Williams 1997, "Computing with infinite networks"; phi = erf(x), unscaled, phi' =
2/sqrt(pi) exp(-x^2)): Price's theorem d/dk12 E[f(u) g(v)] = E[f'(u) g'(v)] (checked here on the
bivariate density: dp/dk12 = d^2 p/du dv), the Gaussian integral

    E[erf'(u) erf'(v)] = (4/pi) E[exp(-u^2 - v^2)] = (4/pi) / sqrt((1+2k11)(1+2k22) - 4 k12^2),

computed with sympy, and the boundary value E[erf u erf v] = 0 at k12 = 0 (independent, odd)
give by integration in k12 the arcsin form (2/pi) arcsin(2 k12 / sqrt((1+2k11)(1+2k22))), whose
k12-derivative is checked symbolically to equal the expression above.

Asserts:
  1. sympy's polar-coordinate result for a min(x,0) + b max(x,0), symbolic in a, b, equals the
     closed forms above; for ReLU, d/dk12 E[phi phi] = E[phi' phi'] symbolically (Price);
  2. the erf arcsin form has k12-derivative equal to the sympy Gaussian integral for
     E[erf' erf'] and vanishes at k12 = 0;
  3. the closed forms agree with 2-D mpmath quadrature (18 digits; nested Gauss–Legendre split
     at the kinks for ReLU, Gauss–Hermite product rule for erf, convergence checked by a second
     order) to 1e-15 absolute at three (ReLU) and two (erf) covariances;
  4. ``fc.get_activation("relu"/"erf").dual`` and ``.dual_derivative``, and
     ``fc.activations.abrelu(a, b)`` for leaky ReLU and |x|, equal the closed forms (evaluated
     in 30-digit mpmath) to 1e-13 relative on 60 random covariances plus nearly parallel and
     nearly antiparallel pairs (|rho| = 1 - 1e-6, 1 - 1e-10), where the ReLU kernel is tiny;
     there the tolerance is 1e-15/(1 - |rho|), the conditioning of the map from rounded float
     covariances (measured: 1e-8 relative at 1 - |rho| = 1e-10, expected from rounding of
     sqrt(k11 k22)).
"""

import time

import mpmath as mp
import numpy as np
import sympy as sp

import fieldcurve as fc

start = time.perf_counter()
r, p = sp.symbols("r p", real=True)
alpha = sp.Symbol("alpha", positive=True)  # the angle between the two inputs, in (0, pi)
a, b = sp.symbols("a b", real=True)
k11, k22 = sp.symbols("k11 k22", positive=True)
k12 = sp.Symbol("k12", real=True)
half_pi = sp.pi / 2

# ---------------------------------------------------------------- 1. arc-cosine family, polar coordinates
rad_phi = sp.integrate(r**3 * sp.exp(-(r**2) / 2), (r, 0, sp.oo))  # = 2
rad_deriv = sp.integrate(r * sp.exp(-(r**2) / 2), (r, 0, sp.oo))  # = 1
assert (rad_phi, rad_deriv) == (2, 1)
# arcs of p in [-pi/2, 3pi/2): (sign of u ~ cos p, sign of v ~ cos(p - alpha)) -> slope of phi at u, v
arcs = [
    ((-half_pi, alpha - half_pi), (b, a)),  # u > 0, v < 0
    ((alpha - half_pi, half_pi), (b, b)),  # u > 0, v > 0
    ((half_pi, alpha + half_pi), (a, b)),  # u < 0, v > 0
    ((alpha + half_pi, 3 * half_pi), (a, a)),  # u < 0, v < 0
]
J_phi = (
    sum(su * sv * sp.integrate(sp.cos(p) * sp.cos(p - alpha), (p, lo, hi)) for (lo, hi), (su, sv) in arcs)
    * rad_phi
    / (2 * sp.pi)
)
J_deriv = sum(su * sv * (hi - lo) for (lo, hi), (su, sv) in arcs) * rad_deriv / (2 * sp.pi)
J_phi, J_deriv = sp.simplify(J_phi), sp.simplify(J_deriv)
print("arc-cosine family (unit variances): E[phi phi] =", J_phi, "; E[phi' phi'] =", J_deriv)

# positive homogeneity: E[phi(u) phi(v)] = sqrt(k11 k22) J(alpha), alpha = arccos(k12 / sqrt(k11 k22))
s = sp.sqrt(k11 * k22)
theta = sp.acos(k12 / s)
dual_abrelu = s * J_phi.subs(alpha, theta)
deriv_abrelu = J_deriv.subs(alpha, theta)
closed_phi = (a - b) ** 2 / (2 * sp.pi) * sp.sqrt(k11 * k22 - k12**2) + (
    (a**2 + b**2) / 2 - (a - b) ** 2 * theta / (2 * sp.pi)
) * k12
closed_deriv = (a**2 + b**2) / 2 - (a - b) ** 2 * theta / (2 * sp.pi)
assert sp.simplify(dual_abrelu - closed_phi) == 0
assert sp.simplify(deriv_abrelu - closed_deriv) == 0
relu_phi = sp.simplify(closed_phi.subs({a: 0, b: 1}))
relu_deriv = sp.simplify(closed_deriv.subs({a: 0, b: 1}))
assert sp.simplify(sp.diff(relu_phi, k12) - relu_deriv) == 0  # Price's theorem
print("ReLU: E[phi phi] =", relu_phi, "; E[phi' phi'] =", relu_deriv)

# ---------------------------------------------------------------- 2. erf: Price's theorem and the arcsin form
uu, vv = sp.symbols("u v", real=True)
D = k11 * k22 - k12**2
density = sp.exp(-(k22 * uu**2 - 2 * k12 * uu * vv + k11 * vv**2) / (2 * D)) / (2 * sp.pi * sp.sqrt(D))
assert sp.simplify((sp.diff(density, k12) - sp.diff(density, uu, vv)) / density) == 0
print("Price: d p / d k12 == d^2 p / du dv for the bivariate Gaussian density")

z1, z2 = sp.symbols("z1 z2", real=True)
A, C = sp.symbols("A C", positive=True)
B = sp.Symbol("B", real=True)
# u = A z1, v = B z1 + C z2 with A^2 = k11, A B = k12, B^2 + C^2 = k22
gauss2 = sp.exp(-(z1**2 + z2**2) / 2) / (2 * sp.pi)
inner = sp.simplify(
    sp.integrate(
        sp.exp(-((A * z1) ** 2) - (B * z1 + C * z2) ** 2) * gauss2, (z2, -sp.oo, sp.oo), conds="none"
    )
)
coef, gauss_part = inner.as_independent(z1)  # inner = coef * exp(-rate z1^2)
rate = sp.simplify(-gauss_part.args[0] / z1**2)
assert sp.simplify(gauss_part - sp.exp(-rate * z1**2)) == 0
assert sp.simplify(rate - (A**2 + sp.S.Half + B**2 / (2 * C**2 + 1))) == 0  # rate > 0: integrable
rate_pos = sp.Symbol("rate", positive=True)
E_exp = coef * sp.integrate(sp.exp(-rate_pos * z1**2), (z1, -sp.oo, sp.oo)).subs(rate_pos, rate)
E_exp = sp.simplify(E_exp.subs({A: sp.sqrt(k11), B: k12 / sp.sqrt(k11), C: sp.sqrt(k22 - k12**2 / k11)}))
erf_deriv = 4 / sp.pi * E_exp
erf_deriv_closed = 4 / sp.pi / sp.sqrt((1 + 2 * k11) * (1 + 2 * k22) - 4 * k12**2)
assert sp.simplify(erf_deriv**2 - erf_deriv_closed**2) == 0  # both positive, so equal
erf_phi = 2 / sp.pi * sp.asin(2 * k12 / sp.sqrt((1 + 2 * k11) * (1 + 2 * k22)))
assert sp.simplify(sp.diff(erf_phi, k12) - erf_deriv_closed) == 0
assert erf_phi.subs(k12, 0) == 0
print("erf: E[erf' erf'] =", erf_deriv_closed, "; integrated in k12:", erf_phi)

# ---------------------------------------------------------------- 3. 2-D mpmath quadrature
mp.mp.dps = 18
CUT = mp.mpf(11)  # standard deviations; the Gaussian mass beyond is below 1e-27


def gauss(z):
    return mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)


def relu_quadrature(c11, c12, c22, derivative=False):
    """Nested Gauss–Legendre over z1 > 0 and z2 beyond the kink of relu(v) (v > 0)."""
    rho = c12 / mp.sqrt(c11 * c22)
    sa = mp.sqrt(1 - rho**2)

    def inner(z1):
        lo = -rho * z1 / sa  # v > 0 <=> z2 > lo
        f = (lambda z2: gauss(z2)) if derivative else (lambda z2: (rho * z1 + sa * z2) * gauss(z2))
        return mp.quad(f, [lo, max(lo, 0) + CUT], method="gauss-legendre")

    outer = (lambda z1: gauss(z1) * inner(z1)) if derivative else (lambda z1: z1 * gauss(z1) * inner(z1))
    val = mp.quad(outer, [0, CUT], method="gauss-legendre")
    return val if derivative else mp.sqrt(c11 * c22) * val


_rules = {}


def hermite_rule(order):
    if order not in _rules:
        nodes, weights = mp.gauss_quadrature(order, "hermite")  # weight exp(-x^2)
        _rules[order] = ([z * mp.sqrt(2) for z in nodes], [wt / mp.sqrt(mp.pi) for wt in weights])
    return _rules[order]


def erf_quadrature(c11, c12, c22, order, derivative=False):
    """Gauss–Hermite product rule in (z1, z2) (standard normal weights)."""
    f = (lambda y: 2 / mp.sqrt(mp.pi) * mp.exp(-y * y)) if derivative else mp.erf
    Z, W = hermite_rule(order)
    ra, rho = mp.sqrt(c11), c12 / mp.sqrt(c11 * c22)
    rb, sa = mp.sqrt(c22), mp.sqrt(1 - rho**2)
    total = mp.mpf(0)
    for za, wa in zip(Z, W, strict=True):
        total += (
            wa * f(ra * za) * mp.fsum(wb * f(rb * (rho * za + sa * zb)) for zb, wb in zip(Z, W, strict=True))
        )
    return total


relu, erf = fc.get_activation("relu"), fc.get_activation("erf")
args = (k11, k12, k22)
relu_phi_mp = sp.lambdify(args, relu_phi, "mpmath")
relu_deriv_mp = sp.lambdify(args, relu_deriv, "mpmath")
erf_phi_mp = sp.lambdify(args, erf_phi, "mpmath")
erf_deriv_mp = sp.lambdify(args, erf_deriv_closed, "mpmath")
worst_quad = 0.0
for cov in [("1", "0.3", "2"), ("0.5", "-0.45", "0.7"), ("1.5", "1.2", "1.1")]:
    c = [mp.mpf(v) for v in cov]
    for closed, quad, lib in [
        (relu_phi_mp, relu_quadrature(*c), relu.dual),
        (relu_deriv_mp, relu_quadrature(*c, derivative=True), relu.dual_derivative),
    ]:
        err = abs(closed(*c) - quad)
        worst_quad = max(worst_quad, float(err))
        assert err < 1e-15, (cov, err)
        assert abs(float(lib(*map(float, cov))) - float(quad)) < 1e-15, cov
for cov in [("1", "-0.6", "0.7"), ("0.3", "0.29", "0.3")]:
    c = [mp.mpf(v) for v in cov]
    for closed, deriv, lib in [(erf_phi_mp, False, erf.dual), (erf_deriv_mp, True, erf.dual_derivative)]:
        q1, q2 = erf_quadrature(*c, 64, deriv), erf_quadrature(*c, 88, deriv)
        assert abs(q1 - q2) < 1e-16, (cov, q1 - q2)  # quadrature converged
        err = abs(closed(*c) - q2)
        worst_quad = max(worst_quad, float(err))
        assert err < 1e-15, (cov, err)
        assert abs(float(lib(*map(float, cov))) - float(q2)) < 1e-15, cov
print(f"closed forms == 2-D mpmath quadrature (worst difference {worst_quad:.1e})")

# ---------------------------------------------------------------- 4. the library on many covariances
mp.mp.dps = 30
rng = np.random.default_rng(1)
covs = []
for _ in range(60):
    v1, v2 = rng.uniform(0.05, 5.0, 2)
    covs.append((v1, rng.uniform(-1, 1) * np.sqrt(v1 * v2), v2))
for gap in (1e-6, 1e-10):
    for sign in (1, -1):
        covs.append((1.3, sign * (1 - gap) * np.sqrt(1.3 * 0.6), 0.6))
family = [
    ((0.0, 1.0), relu),
    ((0.1, 1.0), fc.activations.abrelu(0.1, 1.0)),
    ((-1.0, 1.0), fc.activations.abrelu(-1.0, 1.0)),
]
phi_mp = sp.lambdify((a, b, *args), closed_phi, "mpmath")
deriv_mp = sp.lambdify((a, b, *args), closed_deriv, "mpmath")
worst = 0.0
for c11, c12, c22 in covs:
    # the library gets float inputs: evaluate the closed forms at exactly those floats
    exact_args = [mp.mpf(float(v)) for v in (c11, c12, c22)]
    # the map from float covariances is ill-conditioned as |rho| -> 1: relative condition number
    # ~ 1/(1 - |rho|) (the gap sqrt(k11 k22) - |k12| is computed from rounded inputs)
    near = abs(c12) / np.sqrt(c11 * c22) > 1 - 1e-5
    tol = max(1e-13, 1e-15 / (1 - abs(c12) / np.sqrt(c11 * c22)))
    for (aa, bb), act in family:
        for closed, lib in [(phi_mp, act.dual), (deriv_mp, act.dual_derivative)]:
            ref = closed(mp.mpf(aa), mp.mpf(bb), *exact_args)
            got = float(lib(c11, c12, c22))
            rel = float(abs(got - ref) / abs(ref)) if ref != 0 else abs(got)
            worst = max(worst, rel) if not near else worst
            assert rel < tol, (act.name, c11, c12, c22, got, ref)
    for closed, lib in [(erf_phi_mp, erf.dual), (erf_deriv_mp, erf.dual_derivative)]:
        ref = closed(*exact_args)
        rel = float(abs(float(lib(c11, c12, c22)) - ref) / abs(ref))
        worst = max(worst, rel)
        assert rel < 1e-13, ("erf", c11, c12, c22, rel)
print(f"library duals == closed forms on {len(covs)} covariances (worst relative error {worst:.1e})")
print(f"time {time.perf_counter() - start:.1f} s")
print("OK: dual_activations")
