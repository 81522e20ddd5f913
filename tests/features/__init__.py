"""End-to-end feature tests of the core engine, run on every adapter stack."""
