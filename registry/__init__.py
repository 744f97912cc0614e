"""The registry (`trainmark.registry`): where bundles are submitted, kept and compared.

A SQLModel store (SQLite by default, PostgreSQL by URL) of submissions, runs, summaries, scores,
API keys and an audit log (`store`, `tables`, `database`, Alembic `migrations`); a
content-addressed blob store for the bundles' files (`blobs`); the HTTP API and the public
leaderboard pages (`api`); and the client that submits over HTTP (`client`). docs/registry.md
describes it.
"""
