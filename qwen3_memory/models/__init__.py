"""The models: embedding services (generic sentence-transformers and Qwen3), the reranker, devices, profiles."""
