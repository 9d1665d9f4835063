"""Demo data: a procedural sample gallery in SemArt's layout (nothing downloaded), for
`pgallery demo`, the tests and the benchmarks. Not part of loading or search.

    gallery.py   the gallery: which paintings, their metadata, generate() writes it
    painters.py  the invented painters, their subjects, palettes and brushes
    painting.py  paint(): one painting's pixels
"""

from pgallery.demo.gallery import COLUMNS, MARKER, generate, plan
from pgallery.demo.painters import PAINTERS
from pgallery.demo.painting import paint

__all__ = ["COLUMNS", "MARKER", "PAINTERS", "generate", "paint", "plan"]
