"""qwen3_memory"""
