"""The reproducibility scorer (rubric r1).

Not built yet (issue 4); the package exists so that the distribution's layout is final.
"""
