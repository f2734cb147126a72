"""Uploaded sources: receiving the bytes, checking and extracting the archive safely, storing it by
content hash, and taking out credentials written into the project's files."""
