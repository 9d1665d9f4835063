"""The collection as a 2-D map: layouts (layout.py), the map in SQL (store.py), one
viewport request (viewport.py)."""
