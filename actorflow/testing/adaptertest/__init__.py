"""Conformance suites every adapter runs."""
