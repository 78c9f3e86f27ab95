"""Learning-curve theory: eigenlearning / replica predictions from a kernel spectrum."""

from fieldcurve.theory.dataset import DatasetSpectrum, dataset_learning_curve, dataset_spectrum
from fieldcurve.theory.eigenlearning import LearningCurve, learning_curve, solve_kappa
from fieldcurve.theory.equivalent_kernel import equivalent_kernel_curve
from fieldcurve.theory.finite_width import FiniteWidthCurve, finite_width_learning_curve
from fieldcurve.theory.networks import network_learning_curve

__all__ = [
    "DatasetSpectrum",
    "FiniteWidthCurve",
    "LearningCurve",
    "dataset_learning_curve",
    "dataset_spectrum",
    "equivalent_kernel_curve",
    "finite_width_learning_curve",
    "learning_curve",
    "network_learning_curve",
    "solve_kappa",
]
