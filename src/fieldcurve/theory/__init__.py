"""Learning-curve theory: eigenlearning / replica predictions from a kernel spectrum."""

from fieldcurve.theory.eigenlearning import LearningCurve, learning_curve, solve_kappa

__all__ = ["LearningCurve", "learning_curve", "solve_kappa"]
