"""Stage 5, lowering: formulas -> a plan (plain data) that a backend interprets."""
