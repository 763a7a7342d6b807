"""mot: the moments-of-truth ledger."""

__version__ = "0.1.0"
