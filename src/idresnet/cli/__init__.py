"""The ``idresnet`` command line."""
