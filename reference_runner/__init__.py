"""The reference runner: instrumented PyTorch training that writes conforming bundles.

Not built yet (issue 3); the package exists so that the distribution's layout is final.
"""
