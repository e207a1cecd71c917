"""Stage 1, the language: the grammar, the parser, the IR of a program and its checks."""
