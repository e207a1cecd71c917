"""Stage 3, symbolic: the IR lowered to SymPy, reductions as symbols, stability rewrites,
simplification, derivatives and reduction fusion. Nothing here imports TensorFlow."""
