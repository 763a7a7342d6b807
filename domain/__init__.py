"""The pure domain of mot: wire schema, identity, corrections and ledger events.

Nothing in this package performs I/O or imports an adapter.
"""
