"""The eigenlearning / replica learning curve: kappa equation, conservation law, E0, test error.

Theory (Bordelon, Canatar & Pehlevan 2020; Canatar, Bordelon & Pehlevan 2021; Simon, Dickens,
Karkada & DeWeese 2021-23, "eigenlearning"): kernel ridge regression with ridge delta on P samples,
eigenvalue levels lambda_i with multiplicities m_i, target power v_i^2 per level, noise sigma^2.
The effective ridge kappa > 0 solves

    g(kappa) := sum_i m_i L_i + delta/kappa = P,      L_i = lambda_i / (lambda_i + kappa),

so the learnabilities obey the conservation law sum_i m_i L_i = P - delta/kappa (= P ridgeless).
With E0 = P / (P - sum_i m_i L_i^2) = 1/(1 - gamma):

    E_g = E0 [sum_l (1 - L_l)^2 v_l^2 + sigma^2] - sigma^2,
    E_l = (1 - L_l)^2 v_l^2 + N_l L_l^2 E0 (B + sigma^2) / P,   B = sum_l (1 - L_l)^2 v_l^2,
    E_train = (delta / (P kappa))^2 (E_g + sigma^2),

as stated in src/fieldcurve/theory/eigenlearning.py. Ridgeless with P >= M (number of modes with
lambda > 0): kappa = 0, E0 = P/(P - M).

Derived here with sympy (symbolic in 3 levels):
  * g is strictly decreasing in kappa (dg/dkappa = -sum m lambda/(lambda+kappa)^2 - delta/kappa^2),
    so the positive root is unique; ridgeless it exists iff P < M;
  * implicit differentiation of the kappa equation gives dkappa/d delta = 1/(P - sum m L^2)
    = E0/P: the overfitting coefficient is the sensitivity of kappa to the ridge;
  * sum_l E_l = E_g identically (the per-degree split is a partition of E_g);
  * for two levels, ridgeless, kappa in closed form (a quadratic).

Asserts (small explicit spectra, exact rationals; kappa as the unique positive root of the
polynomial numerator of g(kappa) - P, evaluated to 40 digits):
  1. ``fc.theory.solve_kappa`` equals the exact kappa to 1e-12 relative (3 levels: d = 3 kernel
     1/2 + t/3 + t^2/6 with lambda = 5/9, 1/9, 1/45, m = 1, 3, 5; 2 levels: closed form);
  2. ``fc.learning_curve(spec, target, P, ridge)`` (kappa, learnability, overfitting, bias,
     test_error, test_error_noisy, train_error, error_per_degree) equals the formulas above at
     the exact kappa to 1e-12 relative, for ridgeless and ridge cases, and the interpolating
     regime P >= M has kappa = 0 and E0 = P/(P - M) exactly;
  3. the library's kappa satisfies the conservation law to 1e-12.
"""

import dataclasses
import time

import mpmath as mp
import numpy as np
import sympy as sp

import fieldcurve as fc

start = time.perf_counter()
mp.mp.dps = 40
kappa, delta, P, sigma2 = sp.symbols("kappa delta P sigma2", positive=True)
lam = sp.symbols("lambda1:4", positive=True)
mult = sp.symbols("m1:4", positive=True)
v2 = sp.symbols("v1:4", nonnegative=True)

# ---------------------------------------------------------------- symbolic identities
Ls = [lam_i / (lam_i + kappa) for lam_i in lam]
g = sum(m * L for m, L in zip(mult, Ls, strict=True)) + delta / kappa
dg = sp.diff(g, kappa)
assert (
    sp.simplify(
        dg
        + sum(m * lam_i / (lam_i + kappa) ** 2 for m, lam_i in zip(mult, lam, strict=True))
        + delta / kappa**2
    )
    == 0
)
assert (-dg).is_positive  # every term is negative: g decreases strictly, the root is unique
# ridgeless: g(0+) = M = sum m_i, g(oo) = 0, so a positive root exists iff P < M
assert sp.limit(g.subs(delta, 0), kappa, 0, "+") == sum(mult)
assert sp.limit(g, kappa, sp.oo) == 0

# implicit differentiation: dkappa/ddelta = -(dG/ddelta)/(dG/dkappa), G = g - P, on the solution
dkappa_ddelta = -sp.diff(g - P, delta) / sp.diff(g - P, kappa)
on_solution = {delta: kappa * (P - sum(m * L for m, L in zip(mult, Ls, strict=True)))}
S2 = sum(m * L**2 for m, L in zip(mult, Ls, strict=True))
assert sp.simplify(dkappa_ddelta.subs(on_solution) - 1 / (P - S2)) == 0
print("dkappa/ddelta = 1/(P - sum m L^2) = E0/P on the solution of the kappa equation")

# sum of the per-degree errors is the test error (each level a "degree" with N_l = m_l)
E0 = P / (P - S2)
B = sum((1 - L) ** 2 * v for L, v in zip(Ls, v2, strict=True))
E_g = E0 * (B + sigma2) - sigma2
E_l = [(1 - L) ** 2 * v + m * L**2 * E0 * (B + sigma2) / P for L, v, m in zip(Ls, v2, mult, strict=True)]
assert sp.simplify(sum(E_l) - E_g) == 0
print("sum_l E_l == E_g == E0 (B + sigma^2) - sigma^2")

# two levels, ridgeless: closed-form kappa (the positive root of a quadratic)
l1, l2, n1, n2 = sp.symbols("l1 l2 n1 n2", positive=True)
numer = sp.numer(sp.together(n1 * l1 / (l1 + kappa) + n2 * l2 / (l2 + kappa) - P))
roots = sp.solve(numer, kappa)
assert len(roots) == 2
kappa2 = max(roots, key=lambda rt: rt.subs({l1: 1, l2: sp.Rational(1, 10), n1: 1, n2: 3, P: 2}))
print("two levels, ridgeless: kappa =", sp.simplify(kappa2))


# ---------------------------------------------------------------- exact kappa for explicit spectra
def exact_kappa(lams, mults, ridge, p):
    """Unique positive root of the numerator of g(kappa) - P (exact rationals), to 40 digits."""
    expr = sum(m * lv / (lv + kappa) for lv, m in zip(lams, mults, strict=True)) + ridge / kappa - p
    poly = sp.Poly(sp.numer(sp.together(expr)), kappa)
    pos = [rt for rt in poly.real_roots() if rt > 0]
    assert len(pos) == 1, pos
    return mp.mpf(str(pos[0].evalf(45)))


# two levels: closed form vs library
lams2, mults2 = [sp.Rational(1, 2), sp.Rational(1, 20)], [1, 3]
for p in (1, 2, 3):
    ref = kappa2.subs({l1: lams2[0], l2: lams2[1], n1: mults2[0], n2: mults2[1], P: p})
    ref = mp.mpf(str(sp.N(ref, 45)))
    assert abs(exact_kappa(lams2, mults2, 0, p) / ref - 1) < 1e-35
    got = fc.theory.solve_kappa([0.5, 0.05], [1.0, 3.0], 0.0, [p])[0]
    assert abs(got / ref - 1) < 1e-12, (p, got, ref)
print("two levels: closed-form kappa == fc.theory.solve_kappa")

# three levels: the kernel 1/2 + t/3 + t^2/6 on the 3-sphere
t = sp.Symbol("t")
D = 3
lams3 = fc.symbolic_spectrum(sp.Rational(1, 2) + t / 3 + t**2 / 6, D, 2)
assert lams3 == [sp.Rational(5, 9), sp.Rational(1, 9), sp.Rational(1, 45)]
mults3 = [fc.multiplicity(D, l) for l in range(3)]
M = sum(mults3)
spec = fc.spectrum(fc.polynomial_kernel([0.5, 1 / 3, 1 / 6]), D, 2)
assert abs(spec.tail_mass) < 1e-15
spec = dataclasses.replace(spec, tail_mass=0.0)  # the exact spectrum has no mass beyond l = 2
powers = {0: sp.Rational(3, 10), 1: sp.Integer(1), 2: sp.Rational(1, 2)}
noise = sp.Rational(1, 10)
target = fc.Target.from_degree_powers({l: float(v) for l, v in powers.items()}, noise=float(noise), d=D)
lam_f = [float(v) for v in lams3]


def mpq(r):
    """An exact rational as a 40-digit mpmath number."""
    r = sp.Rational(r)
    return mp.mpf(r.p) / r.q


def reference(p, ridge):
    """All the curve's quantities from the formulas, at the exact kappa (mpmath, 40 digits)."""
    k = exact_kappa(lams3, mults3, ridge, p)
    L = [mpq(lv) / (mpq(lv) + k) for lv in lams3]
    s2 = mp.fsum(m * x**2 for m, x in zip(mults3, L, strict=True))
    e0 = p / (p - s2)
    bias = mp.fsum((1 - x) ** 2 * mpq(powers[l]) for l, x in enumerate(L))
    sig = mpq(noise)
    test = e0 * (bias + sig) - sig
    train = (mpq(ridge) / (p * k)) ** 2 * (test + sig)
    per = [(1 - x) ** 2 * mpq(powers[l]) + mults3[l] * x**2 * e0 * (bias + sig) / p for l, x in enumerate(L)]
    conservation = mp.fsum(m * x for m, x in zip(mults3, L, strict=True)) + mpq(ridge) / k - p
    assert abs(conservation) < mp.mpf(10) ** -30
    return {
        "kappa": k,
        "learnability": L,
        "overfitting": e0,
        "bias": bias,
        "test_error": test,
        "test_error_noisy": test + sig,
        "train_error": train,
        "error_per_degree": per,
    }


def close(got, ref, tol=1e-12):
    got, ref = np.atleast_1d(np.asarray(got, dtype=float)), [float(r) for r in np.atleast_1d(ref)]
    return all(abs(a - r) <= tol * max(abs(r), 1e-300) for a, r in zip(got, ref, strict=True))


cases = [(1, 0), (2, 0), (5, 0), (8, 0), (3, sp.Rational(1, 100)), (20, sp.Rational(1, 10)), (50, 1)]
worst = 0.0
for p, ridge in cases:
    ref = reference(p, ridge)
    k_lib = fc.theory.solve_kappa(lam_f, [float(m) for m in mults3], float(ridge), [p])[0]
    assert close(k_lib, ref["kappa"]), (p, ridge, k_lib, ref["kappa"])
    worst = max(worst, abs(k_lib / float(ref["kappa"]) - 1))
    cons = sum(m * lv / (lv + k_lib) for m, lv in zip(mults3, lam_f, strict=True)) + float(ridge) / k_lib - p
    assert abs(cons) < 1e-12 * p, cons
    curve = fc.learning_curve(spec, target, [p], ridge=float(ridge))
    for name in ("kappa", "overfitting", "bias", "test_error", "test_error_noisy", "train_error"):
        assert close(getattr(curve, name)[0], ref[name]), (p, ridge, name, getattr(curve, name)[0], ref[name])
    assert close(curve.learnability[0], ref["learnability"]), (p, ridge)
    assert close(curve.error_per_degree[0], ref["error_per_degree"]), (p, ridge)
    assert close(curve.error_per_degree[0].sum(), ref["test_error"]), (p, ridge)  # all modes are in lmax
    print(
        f"  P = {p:3d}, ridge = {ridge!s:6s}: kappa = {mp.nstr(ref['kappa'], 15):>20s},"
        f" E0 = {mp.nstr(ref['overfitting'], 10):>12s}, E_g = {mp.nstr(ref['test_error'], 12)}"
    )
print(f"fc.theory.solve_kappa and fc.learning_curve == exact (worst kappa relative error {worst:.1e})")

# interpolating regime: ridgeless, P >= M
for p in (12, 30):
    curve = fc.learning_curve(spec, target, [p], ridge=0.0)
    assert curve.kappa[0] == 0.0 and close(curve.overfitting[0], p / (p - M))
    # every target degree is learned (L = 1): E_g = E0 sigma^2 - sigma^2 = sigma^2 M/(P - M)
    assert close(curve.test_error[0], float(noise) * M / (p - M)), curve.test_error
print(f"ridgeless P >= M = {M}: kappa = 0, E0 = P/(P - M), E_g = sigma^2 M/(P - M)")
print(f"time {time.perf_counter() - start:.1f} s")
print("OK: eigenlearning_kappa")
