"""qwen3_memory/migration"""
