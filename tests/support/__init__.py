"""Helpers shared by the test tiers (see CONTRIBUTING.md).

A test module imports shared helpers from here (or gets them as fixtures from a conftest.py),
never from another test module: a test file can then be moved, renamed or deleted without
breaking an unrelated one. Nothing in this package is collected as a test.
"""
