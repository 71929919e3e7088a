"""tejido: fault-tolerant distributed systems from pure protocol cores."""

__version__ = "0.1.0"

__all__ = ["__version__"]
