"""FAISS + SQLite backend: each collection a folder (index file, SQLite database, manifest)."""
