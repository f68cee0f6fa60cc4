"""Command-line interface: thin shells that parse, call library functions and write outputs."""
