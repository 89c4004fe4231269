"""The version of idresnet (recorded with every run and weights file)."""

__version__ = "0.1.0"
