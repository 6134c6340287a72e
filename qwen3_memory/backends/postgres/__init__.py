"""qwen3_memory/backends/postgres"""
