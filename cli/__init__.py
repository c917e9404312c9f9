"""The ``augment`` command line (thin click adapters over the library)."""
