"""logshield agent: tails log files through rotation and ships every line exactly once to a store."""

__all__ = ["__version__"]

__version__ = "0.1.0"
