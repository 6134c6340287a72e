"""qwen3_memory/recall"""
