"""gramjax: super-resolution with per-pixel data uncertainty (GRAM) in JAX."""

__version__ = '0.1.0'
