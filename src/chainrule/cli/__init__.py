"""Command line: ``chainrule train`` and ``chainrule evaluate``."""
