"""The registry: submissions store, HTTP API and public leaderboard.

Not built yet (issue 6); the package exists so that the distribution's layout is final.
"""
