"""Indexer: read corpus files, encode them, and write collections."""
