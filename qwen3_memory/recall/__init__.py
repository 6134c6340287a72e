"""Recall: embed the query in the read space, dense + lexical candidates, fusion, rerank, excerpts."""
