"""The version of lossdsl, in a module of its own so that any stage can read it without the façade."""

__version__ = "0.1.0"
