"""Stage 4, analysis: the one orchestrator (``analyze``) and what it reports: domains and
singularities, separability, the symbolic backward formulas, explanations and LaTeX."""
