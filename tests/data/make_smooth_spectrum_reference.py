"""Independent reference eigenvalues for a one-hidden-layer tanh network (tests/test_hermite.py).

Not part of the library and never run by the tests (about 10 minutes); it uses no fieldcurve
code. For the NNGP of ``MLP(1, "tanh", weight_var=s2)`` on the sqrt(d)-sphere, write the hidden
preactivation as sigma_w |w| (w_hat . x_hat) with w ~ N(0, I_d); Funk–Hecke in w_hat gives

    lambda_l = s2 * E_rho[F_l(rho)^2],
    F_l(rho) = c_d int_{-1}^{1} tanh(rho s) P_l(s) (1 - s^2)^((d-3)/2) ds,
    rho = sigma_w |w|,  |w| ~ chi_d,

with P_l the Gegenbauer polynomial normalised to P_l(1) = 1 and c_d = Gamma(d/2) /
(sqrt(pi) Gamma((d-1)/2)). Nested mpmath.quad (tanh–sinh) at 40 digits. Output (d = 784,
s2 = 2): lambda_1 = 0.00117603616912536, lambda_3 = 1.03508650808049e-9 (15 digits shown).
"""

from __future__ import annotations

import mpmath


def ridge_eigenvalue(s2: float, d: int, l: int, dps: int = 40) -> mpmath.mpf:
    """lambda_l of the one-hidden-layer tanh NNGP by the ridge-function Funk–Hecke integral."""
    with mpmath.workdps(dps):
        alpha = mpmath.mpf(d - 2) / 2
        cd = mpmath.gamma(mpmath.mpf(d) / 2) / (mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(d - 1) / 2))
        norm = mpmath.gegenbauer(l, alpha, 1)
        power = mpmath.mpf(d - 3) / 2

        def funk_hecke(rho: mpmath.mpf) -> mpmath.mpf:
            def integrand(s: mpmath.mpf) -> mpmath.mpf:
                return mpmath.tanh(rho * s) * mpmath.gegenbauer(l, alpha, s) / norm * (1 - s * s) ** power

            w = 12 / mpmath.sqrt(d)
            return cd * mpmath.quad(integrand, [-1, -w, 0, w, 1])

        log_norm = (mpmath.mpf(d) / 2 - 1) * mpmath.log(2) + mpmath.loggamma(mpmath.mpf(d) / 2)

        def chi_density(r: mpmath.mpf) -> mpmath.mpf:
            return mpmath.exp((d - 1) * mpmath.log(r) - r * r / 2 - log_norm)

        def outer(r: mpmath.mpf) -> mpmath.mpf:
            return chi_density(r) * funk_hecke(mpmath.sqrt(s2) * r) ** 2

        c = mpmath.sqrt(d - 1)
        return s2 * mpmath.quad(outer, [c - 12, c - 4, c, c + 4, c + 12])


if __name__ == "__main__":
    for degree in (1, 3):
        print(degree, mpmath.nstr(ridge_eigenvalue(2.0, 784, degree), 20))
