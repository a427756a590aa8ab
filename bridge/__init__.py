"""popbridge: fetch mail over POP3, POST it as signed JSON, delete it only once acknowledged."""

__version__ = "0.1.0"

__all__ = ["__version__"]
