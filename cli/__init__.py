"""The ``genrecnn`` command line (click)."""
