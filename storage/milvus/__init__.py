"""Milvus backend (pymilvus `MilvusClient`; milvus-lite `.db` files or a Milvus server)."""
