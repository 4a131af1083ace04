"""Autobahn|Testsuite conformance of the echo target, driven by kosoku (see run.py)."""
