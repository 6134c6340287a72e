"""qwen3_memory/backends/sqlite"""
