"""Hostile inputs and faults, built for real (sparse tars, killed processes, read-only folders,
PostgreSQL), each one a finding that once got through; every test failed on the code before its fix."""
