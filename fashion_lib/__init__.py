"""fashion_lib: a reproducible study of apparel key-point localization and attribute recognition."""

__version__ = "0.1.0"
