"""Built-in backends; each registers through the ``genrecnn`` entry-point group."""
