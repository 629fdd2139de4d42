"""`python -m indexer` runs the semsearch CLI."""

from indexer.cli import main

main()
