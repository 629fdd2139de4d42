"""Search API: FastAPI service over semsearch collections."""
