"""Importers: third-party result formats as bundles (MLPerf Training today)."""
