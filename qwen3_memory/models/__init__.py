"""qwen3_memory/models"""
