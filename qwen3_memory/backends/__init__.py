"""qwen3_memory/backends"""
