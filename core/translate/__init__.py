"""Cross-dialect translation, sans-IO: bodies dict -> dict, streams bytes -> bytes.

Every dialect is read into and written from one canonical model (canonical.py), so twelve
directed pairs need four readers and four writers per shape (request, response, stream).
"""
