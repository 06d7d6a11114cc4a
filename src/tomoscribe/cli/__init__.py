"""The ``tomoscribe`` command line: one module per command group."""
