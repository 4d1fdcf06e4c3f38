"""Dated migrations: index changes and backfills a release needs, one script each, named
`YYYY_MM_DD_what.py`, whose docstring says why and when to run it. Each is run by hand with
`python -m migrations.<name>` against the configured MONGODB_URI, and is safe to run again.
"""
