"""An example third-party genrecnn backend, found only through its entry point."""
