"""The NNGP and NTK recursions of a deep MLP in the NTK parameterisation, from the network itself.

Network (Jacot, Gabriel & Hongler 2018; neural-tangents convention, Novak et al. 2020): Dense layers
l = 1..L+1 with trainable W^l_ij, b^l_i ~ N(0, 1),

    z^1 = sqrt(w_1/d) W^1 x + sqrt(b_1) b^1,
    z^{l+1} = sqrt(w_{l+1}/n) W^{l+1} phi(z^l) + sqrt(b_{l+1}) b^{l+1},

f = z^{L+1}, inputs on the sqrt(d)-sphere, t = x.x'/d; bias_var b_l = 0 means no bias parameter.
The NTK is Theta(x, x') = sum_params df(x)/d theta df(x')/d theta. Grouping the parameters by
layer, the layer-l parameters contribute (forward part) x (backward part):

    [w_l Kpost^{l-1}(x,x') + b_l] * sum_i delta^l_i(x) delta^l_i(x'),   delta^l = df/dz^l,

with Kpost^0 = t, Kpost^l = E[phi(u) phi(v)] over (u, v) ~ N(0, K^l). At infinite width the
backward sum concentrates on prod_{m=l}^{L} w_{m+1} Kdot^m, Kdot^m = E[phi'(u) phi'(v)] (Jacot et
al. 2018; Yang 2020, gradient independence), so

    Theta^{L+1} = sum_{l=1}^{L+1} K^l prod_{m=l}^{L} w_{m+1} Kdot^m,   K^l = w_l Kpost^{l-1} + b_l,

which unrolls the recursion Theta^{l+1} = K^{l+1} + w_{l+1} Kdot^l Theta^l (Theta^1 = K^1).

Asserts:
  1. (telescoping) the layer sum above equals the library's recursion, symbolically for L <= 4
     with symbolic per-layer K^l, w_l, Kdot^l;
  2. (explicit finite networks, exact) for an explicit symbolic network of width n = 1 and 2 on
     d = 2 inputs, E[f(x) f(x')] and E[Theta(x, x')] computed from the parameter gradients with
     exact Gaussian moments (Isserlis) are polynomials in t that do not depend on n and equal
     the infinite-width formulas, for a deep linear network (L = 2) and a one-hidden-layer
     quadratic network (phi = z^2); for these the expectation is width-independent: forward and
     backward factors are independent (linear), or the hidden units are i.i.d. (one layer);
  3. the infinite-width polynomials for linear (L = 3) and quadratic (L = 1, 2, 3) networks with
     distinct per-layer variances, derived with exact Gaussian moments, equal
     ``fc.nngp_kernel(mlp)(t)`` and ``fc.ntk_kernel(mlp)(t)`` at 9 values of t to 1e-13
     relative, and the layer sum with the arc-cosine closed forms (ReLU, with bias, L = 3;
     30-digit mpmath) equals the library to 1e-13 relative.
"""

import time

import mpmath as mp
import numpy as np
import sympy as sp

import fieldcurve as fc

start = time.perf_counter()
t = sp.Symbol("t", real=True)


# ---------------------------------------------------------------- 1. layer sum == recursion (telescoping)
def library_recursion(K, wv, Kdot):
    """As in fieldcurve.kernels: after Dense l, Theta <- K^l + w_l Theta; after phi, Theta <- Theta Kdot^l."""
    theta = sp.Integer(0)
    for l in range(len(K)):
        theta = K[l] + wv[l] * theta
        if l < len(K) - 1:
            theta = theta * Kdot[l]
    return theta


def layer_sum(K, wv, Kdot):
    """sum_l K^l prod_{m >= l} w_{m+1} Kdot^m (indices from 0 here)."""
    L1 = len(K)
    return sum(K[l] * sp.prod([wv[m + 1] * Kdot[m] for m in range(l, L1 - 1)]) for l in range(L1))


for depth in range(5):
    Ks = sp.symbols(f"K1:{depth + 2}")
    ws = sp.symbols(f"w1:{depth + 2}")
    Kd = sp.symbols(f"Kdot1:{depth + 1}") if depth else ()
    assert sp.expand(library_recursion(Ks, ws, Kd) - layer_sum(Ks, ws, Kd)) == 0
print("layer sum of forward x backward parts == library NTK recursion (L <= 4, symbolic)")


# ---------------------------------------------------------------- Gaussian moments (Isserlis)
def gauss_expect(expr, variables):
    """E over independent standard normal ``variables`` of a polynomial: E[z^k] = (k-1)!! (k even)."""
    poly = sp.Poly(sp.expand(expr), *variables)
    total = sp.Integer(0)
    for monom, coeff in poly.terms():
        if all(k % 2 == 0 for k in monom):
            total += coeff * sp.prod([sp.factorial2(k - 1) for k in monom if k])
    return sp.expand(total)


z1, z2 = sp.symbols("z1 z2", real=True)
k11, k12, k22 = sp.symbols("k11 k12 k22", real=True)
A, Bc, C = sp.symbols("A B C", positive=True)
to_cov = {Bc: k12 / A, C: sp.sqrt(k22 - k12**2 / A**2)}


def dual_maps(phi, dphi):
    """(E[phi(u)phi(v)], E[phi'(u)phi'(v)]) as polynomials in k11, k12, k22 (u = A z1, v = B z1 + C z2)."""
    u, v = A * z1, Bc * z1 + C * z2
    out = []
    for f in (phi, dphi):
        e = gauss_expect(f(u) * f(v), [z1, z2]).subs(to_cov)
        out.append(sp.expand(sp.simplify(e.subs(A, sp.sqrt(k11)))))
    return out


ACTS = {
    "identity": (lambda z: z, lambda z: sp.Integer(1)),
    "quadratic": (lambda z: z**2, lambda z: 2 * z),
}
DUALS = {name: dual_maps(*fns) for name, fns in ACTS.items()}
assert DUALS["quadratic"][0] == sp.expand(k11 * k22 + 2 * k12**2) and DUALS["quadratic"][1] == 4 * k12
print("Gaussian duals of z^2:", DUALS["quadratic"])


def infinite_width(act, wv, bv):
    """(NNGP, NTK) polynomials in t: covariance recursion + the layer sum of item 1."""
    kpost, kpost_diag = t, sp.Integer(1)  # |x|^2/d = 1 on the sphere
    K, Kdot = [], []
    for l in range(len(wv)):
        k_off, k_diag = wv[l] * kpost + bv[l], wv[l] * kpost_diag + bv[l]
        K.append(sp.expand(k_off))
        if l == len(wv) - 1:
            break
        sub = {k11: k_diag, k22: k_diag, k12: k_off}
        kpost, kpost_diag = (
            DUALS[act][0].subs(sub),
            DUALS[act][0].subs({k11: k_diag, k22: k_diag, k12: k_diag}),
        )
        Kdot.append(DUALS[act][1].subs(sub))
    return K[-1], sp.expand(layer_sum(K, wv, Kdot))


# ---------------------------------------------------------------- 2. explicit finite-width networks
def explicit_network(act, width, wv, bv, dim=2):
    """Symbolic network output f(x) and its parameter list."""
    phi = ACTS[act][0]
    dims = [dim] + [width] * (len(wv) - 1) + [1]
    Ws, bs, params = [], [], []
    for l in range(len(wv)):
        W = sp.Matrix(dims[l + 1], dims[l], lambda i, j, l=l: sp.Symbol(f"W{l}_{i}_{j}"))
        bias = sp.Matrix(dims[l + 1], 1, lambda i, j, l=l: sp.Symbol(f"b{l}_{i}"))
        Ws.append(W)
        bs.append(bias)
        params += list(W) + (list(bias) if bv[l] else [])

    def f(x):
        h = x
        for l in range(len(wv)):
            z = sp.sqrt(sp.Rational(wv[l], dims[l])) * (Ws[l] * h)
            if bv[l]:
                z += sp.sqrt(bv[l]) * bs[l]
            if l == len(wv) - 1:
                return sp.expand(z[0])
            h = z.applyfunc(phi)

    return f, params


x_in = sp.Matrix([sp.sqrt(2), 0])  # two points on the sqrt(2)-circle with cosine t
y_in = sp.sqrt(2) * sp.Matrix([t, sp.sqrt(1 - t**2)])
CASES = [
    (
        "identity",
        [sp.Rational(3, 2), sp.Rational(1, 2), sp.Integer(2)],
        [sp.Rational(1, 4), 0, sp.Rational(1, 3)],
    ),
    ("quadratic", [sp.Rational(3, 2), sp.Rational(2, 3)], [sp.Rational(1, 4), sp.Rational(1, 5)]),
]
for act, wv, bv in CASES:
    nngp_inf, ntk_inf = infinite_width(act, wv, bv)
    for width in (1, 2):
        f, params = explicit_network(act, width, wv, bv)
        fx, fy = f(x_in), f(y_in)
        ntk_n = gauss_expect(sum(sp.diff(fx, q) * sp.diff(fy, q) for q in params), params)
        nngp_n = gauss_expect(fx * fy, params)
        assert sp.expand(ntk_n - ntk_inf) == 0, (act, width, ntk_n, ntk_inf)
        assert sp.expand(nngp_n - nngp_inf) == 0, (act, width, nngp_n, nngp_inf)
    print(f"explicit {act} network (L = {len(wv) - 1}, widths 1, 2): E[Theta] =", ntk_inf)


# ---------------------------------------------------------------- 3. against the library
def activation(act):
    return fc.activations.identity() if act == "identity" else fc.activations.monomial(2)


t_grid = np.linspace(-1.0, 1.0, 9)
CHECKS = [
    *CASES,
    (
        "identity",
        [sp.Rational(6, 5), sp.Rational(1, 2), sp.Integer(2), sp.Rational(3, 4)],
        [0, sp.Rational(1, 2), 0, 1],
    ),
    (
        "quadratic",
        [sp.Rational(1, 2), sp.Rational(3, 4), sp.Rational(1, 3)],
        [sp.Rational(1, 10), 0, sp.Rational(1, 2)],
    ),
    (
        "quadratic",
        [sp.Rational(1, 2), sp.Rational(1, 2), sp.Rational(2, 5), sp.Integer(1)],
        [sp.Rational(1, 5), sp.Rational(1, 10), 0, sp.Rational(1, 3)],
    ),
]
worst = 0.0
for act, wv, bv in CHECKS:
    nngp_inf, ntk_inf = infinite_width(act, wv, bv)
    mlp = fc.MLP(len(wv) - 1, activation(act), [float(v) for v in wv], [float(v) for v in bv])
    for sym, lib in ((nngp_inf, fc.nngp_kernel(mlp)), (ntk_inf, fc.ntk_kernel(mlp))):
        ref = np.array([float(sym.subs(t, sp.Rational(tv))) for tv in t_grid])
        got = lib(t_grid, 2)
        rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)
        worst = max(worst, float(rel.max()))
        assert rel.max() < 1e-13, (act, wv, bv, got, ref)
print(f"infinite-width polynomials == fc.nngp_kernel / fc.ntk_kernel (worst relative error {worst:.1e})")

# ReLU with bias, depth 3: the layer sum with the arc-cosine closed forms, in mpmath
mp.mp.dps = 30


def relu_maps(c11, c12, c22):
    s = mp.sqrt(c11 * c22)
    th = mp.acos(max(min(c12 / s, 1), -1))
    return (s * mp.sin(th) + (mp.pi - th) * c12) / (2 * mp.pi), (mp.pi - th) / (2 * mp.pi)


wv_r, bv_r = [1.7, 2.0, 1.5, 1.0], [0.2, 0.0, 0.1, 0.3]
mlp = fc.MLP(3, "relu", wv_r, bv_r)
lib_ntk, lib_nngp = fc.ntk_kernel(mlp)(t_grid), fc.nngp_kernel(mlp)(t_grid)
for i, tv in enumerate(t_grid):
    kpost, kdiag = mp.mpf(float(tv)), mp.mpf(1)
    K, Kdot = [], []
    for l in range(4):
        off, diag = wv_r[l] * kpost + bv_r[l], wv_r[l] * kdiag + bv_r[l]
        K.append(off)
        if l == 3:
            break
        kpost, kd = relu_maps(diag, off, diag)
        Kdot.append(kd)
        kdiag = relu_maps(diag, diag, diag)[0]
    theta = sum(K[l] * mp.fprod([wv_r[m + 1] * Kdot[m] for m in range(l, 3)]) for l in range(4))
    assert abs(lib_ntk[i] - theta) < 1e-13 * abs(theta), (tv, lib_ntk[i], theta)
    assert abs(lib_nngp[i] - K[-1]) < 1e-13 * abs(K[-1]), (tv, lib_nngp[i], K[-1])
print("ReLU (with bias, L = 3): layer sum with arc-cosine duals == fc.ntk_kernel / fc.nngp_kernel")
print(f"time {time.perf_counter() - start:.1f} s")
print("OK: ntk_recursion")
