"""Learning-curve theory: eigenlearning / replica predictions from a kernel spectrum."""

from fieldcurve.theory.eigenlearning import LearningCurve, learning_curve, solve_kappa
from fieldcurve.theory.networks import network_learning_curve

__all__ = ["LearningCurve", "learning_curve", "network_learning_curve", "solve_kappa"]
