"""Showing results: terminal tables and JSON (tables.py), HTML pages (html.py)."""
