"""cogs/common"""
