"""The sample gallery's 24 invented painters: who they are (name, school, years), what they
paint (a composition family and its subjects, with the titles and descriptions the gallery
shows) and how (a palette and a brush), and the words that describe each style."""

from __future__ import annotations

from dataclasses import dataclass

Colour = tuple[int, int, int]

PALETTES: dict[str, list[Colour]] = {
    "dutch":      [(58, 44, 30), (120, 86, 48), (186, 150, 92), (232, 214, 170), (74, 82, 54)],
    "venetian":   [(150, 28, 30), (214, 170, 70), (32, 52, 128), (230, 190, 160), (60, 30, 24)],
    "impression": [(150, 190, 230), (196, 170, 220), (170, 210, 150), (246, 226, 120),
                   (240, 180, 190)],
    "nocturne":   [(14, 20, 52), (36, 44, 96), (6, 6, 14), (236, 222, 140), (90, 100, 150)],
    "storm":      [(70, 80, 86), (30, 58, 66), (226, 230, 228), (110, 126, 112), (40, 42, 46)],
    "azure":      [(40, 120, 200), (245, 245, 240), (196, 90, 50), (240, 200, 60),
                   (120, 180, 220)],
    "autumn":     [(200, 110, 30), (130, 50, 24), (90, 60, 30), (220, 170, 60), (60, 70, 40)],
    "primary":    [(210, 30, 30), (20, 50, 160), (245, 210, 20), (15, 15, 15), (245, 245, 240)],
    "pastel":     [(250, 210, 180), (190, 230, 200), (180, 210, 240), (250, 240, 210),
                   (230, 190, 220)],
    "spanish":    [(12, 10, 10), (120, 16, 24), (110, 110, 110), (224, 186, 150), (60, 50, 44)],
    "gold":       [(212, 168, 60), (160, 24, 30), (28, 44, 140), (250, 244, 230), (90, 60, 30)],
    "sepia":      [(236, 222, 196), (150, 100, 60), (80, 50, 30), (200, 170, 130),
                   (110, 80, 50)],
    "winter":     [(236, 240, 246), (170, 196, 220), (120, 126, 136), (70, 50, 40),
                   (200, 214, 230)],
    "fauve":      [(20, 170, 80), (220, 40, 150), (250, 130, 20), (30, 80, 220),
                   (250, 230, 40)],
}


@dataclass(frozen=True)
class Brush:
    strokes: float        # strokes per 100 pixels
    length: int           # stroke length, px
    width: int            # stroke width, px
    angle: float | None   # fixed direction in degrees, or None for any direction
    jitter: int           # colour jitter of a stroke, 0..255
    grain: float          # canvas grain (noise sigma)
    blur: float           # soft finish (Gaussian radius, 0 = none)
    varnish: float        # yellowed-varnish tint, 0..1


BRUSHES = {
    "smooth":    Brush(0.5, 6, 2, None, 6, 3.0, 1.2, 0.25),
    "glazed":    Brush(0.3, 5, 2, None, 4, 2.0, 1.6, 0.35),
    "dabs":      Brush(3.0, 5, 4, None, 26, 4.0, 0.0, 0.0),
    "swirl":     Brush(3.5, 12, 3, None, 30, 3.0, 0.0, 0.0),
    "horizontal": Brush(2.5, 16, 3, 0.0, 16, 3.0, 0.0, 0.1),
    "vertical":  Brush(2.5, 14, 3, 90.0, 16, 3.0, 0.0, 0.1),
    "diagonal":  Brush(2.0, 12, 2, 45.0, 20, 5.0, 0.0, 0.0),
    "flat":      Brush(0.0, 1, 1, None, 0, 1.0, 0.0, 0.0),
    "hatching":  Brush(2.0, 9, 1, 60.0, 10, 2.0, 0.0, 0.0),
}


@dataclass(frozen=True)
class Painter:
    surname: str
    firstname: str
    school: str
    years: tuple[int, int]
    family: str
    palette: str
    brush: str
    medium: str = "Oil on canvas"


PAINTERS = [
    Painter("VANDERHOOGT", "Jacob", "Dutch", (1620, 1670), "landscape", "dutch", "smooth"),
    Painter("MOREL", "Claude", "French", (1860, 1900), "landscape", "impression", "dabs"),
    Painter("KESSLER", "Anna", "German", (1815, 1850), "landscape", "winter", "smooth"),
    Painter("LARSEN", "Nils", "Danish", (1880, 1920), "landscape", "autumn", "vertical"),
    Painter("WAVERLEY", "Thomas", "English", (1800, 1845), "seascape", "storm", "swirl"),
    Painter("DE ROOS", "Willem", "Dutch", (1640, 1690), "seascape", "dutch", "horizontal"),
    Painter("SALVI", "Marina", "Italian", (1740, 1780), "seascape", "azure", "smooth"),
    Painter("ALTAMIRA", "Diego de", "Spanish", (1620, 1660), "portrait", "spanish", "glazed"),
    Painter("BELLINCIONI", "Lucrezia", "Italian", (1500, 1540), "portrait", "venetian",
            "glazed", "Oil on panel"),
    Painter("HALSTEAD", "Margaret", "English", (1760, 1800), "portrait", "pastel", "smooth"),
    Painter("KRUGER", "Otto", "German", (1900, 1930), "portrait", "fauve", "dabs"),
    Painter("CLAESZ", "Pieter", "Dutch", (1625, 1660), "stilllife", "dutch", "glazed",
            "Oil on panel"),
    Painter("CHARDONNE", "Louise", "French", (1730, 1770), "stilllife", "autumn", "smooth"),
    Painter("ZURBAR", "Mateo", "Spanish", (1630, 1665), "stilllife", "spanish", "glazed"),
    Painter("VERMEULEN", "Johanna", "Dutch", (1655, 1675), "interior", "dutch", "smooth"),
    Painter("HAMMERSTAD", "Vilhelm", "Danish", (1885, 1915), "interior", "winter", "flat"),
    Painter("NACHTIGALL", "Ernst", "German", (1830, 1870), "night", "nocturne", "smooth"),
    Painter("VAN DER NEER", "Aert", "Dutch", (1640, 1680), "night", "nocturne", "horizontal"),
    Painter("DA SIENA", "Duccio", "Italian", (1300, 1340), "religious", "gold", "flat",
            "Tempera on wood"),
    Painter("MEMLINCK", "Hans", "Flemish", (1470, 1495), "religious", "venetian", "glazed",
            "Oil on oak panel"),
    Painter("RUBENSZ", "Peter", "Flemish", (1610, 1640), "figures", "venetian", "swirl"),
    Painter("POUSSARD", "Nicolas", "French", (1630, 1665), "figures", "azure", "smooth"),
    Painter("BRUEGHEL", "Lucas", "Flemish", (1560, 1600), "figures", "winter", "dabs",
            "Oil on panel"),
    Painter("MONDRIAANS", "Piet", "Dutch", (1920, 1944), "abstract", "primary", "flat"),
    Painter("KANDINSKAJA", "Vera", "Russian", (1912, 1935), "abstract", "fauve", "flat"),
    Painter("GUERCINI", "Paolo", "Italian", (1600, 1640), "study", "sepia", "hatching",
            "Pen and brown ink on paper"),
]

# (TYPE, title, description) per family; a painter's works cycle through its subjects.
SUBJECTS: dict[str, list[tuple[str, str, str]]] = {
    "landscape": [
        ("landscape", "River Valley with a Windmill",
         "A wide river valley with a windmill on the bank under a cloudy sky."),
        ("landscape", "Wheat Fields in Summer",
         "Golden wheat fields under a bright summer sky with a row of trees."),
        ("landscape", "Hill with a Ruined Castle",
         "A wooded hill crowned by a ruined castle at the edge of a plain."),
        ("landscape", "Village Road with Poplars",
         "A country road lined with tall poplars leading to a village church."),
        ("landscape", "Mountain Lake at Evening",
         "Blue mountains reflected in a quiet lake in the evening light."),
    ],
    "seascape": [
        ("landscape", "Stormy Sea with a Lighthouse",
         "A stormy sea with a lighthouse on a rocky point; waves break under a dark sky."),
        ("landscape", "Fishing Boats at Dawn",
         "Fishing boats with white sails on a calm sea at dawn."),
        ("landscape", "Harbour with Sailing Ships",
         "A busy harbour with sailing ships at anchor and a quay."),
        ("landscape", "Shipwreck on a Rocky Coast",
         "A shipwreck on a rocky coast, the broken mast against a grey storm."),
    ],
    "portrait": [
        ("portrait", "Portrait of a Young Woman in a Red Dress",
         "Portrait of a young woman in a red dress against a dark background."),
        ("portrait", "Portrait of an Old Man with a White Beard",
         "Portrait of an old man with a white beard, dressed in black."),
        ("portrait", "Portrait of a Nobleman with a Lace Collar",
         "Half-length portrait of a nobleman in black with a white lace collar."),
        ("portrait", "Portrait of a Girl in Blue",
         "Portrait of a girl in a blue dress with a pearl necklace."),
        ("portrait", "Self-Portrait",
         "Self-portrait of the painter in a brown coat, looking at the viewer."),
    ],
    "stilllife": [
        ("still-life", "Still-Life with Lemons and a Silver Jug",
         "Still life with lemons, a silver jug and a glass of wine on a table."),
        ("still-life", "Still-Life with Apples and Grapes",
         "Still life with red apples, grapes and a pewter plate on a wooden table."),
        ("still-life", "Flowers in a Blue Vase",
         "A bouquet of flowers in a blue vase on a dark ledge."),
        ("still-life", "Vanitas with a Skull and a Candle",
         "Vanitas still life with a skull, a candle and an open book."),
    ],
    "interior": [
        ("interior", "Woman Reading a Letter by a Window",
         "A woman reading a letter by an open window in a quiet room with a tiled floor."),
        ("interior", "The Kitchen Maid",
         "A kitchen maid pouring milk at a table near the window."),
        ("interior", "Church Interior with Columns",
         "The interior of a white church with tall columns and light from high windows."),
        ("interior", "Empty Room with an Open Door",
         "An empty room with grey walls and an open door to a sunlit hall."),
    ],
    "night": [
        ("landscape", "Moonlit Town by a River",
         "A moonlit town by a river at night; the full moon is reflected in the water."),
        ("landscape", "Starry Night over a Village",
         "A starry night sky over a sleeping village with a church tower."),
        ("genre", "Fireworks over the Harbour",
         "Fireworks over a harbour at night, lighting the water with sparks."),
        ("landscape", "Frozen River by Moonlight",
         "A frozen river by moonlight with bare trees and a lone walker."),
    ],
    "religious": [
        ("religious", "Madonna and Child Enthroned",
         "The Madonna and Child enthroned on a gold ground, with haloed saints."),
        ("religious", "The Annunciation",
         "The Annunciation: the angel Gabriel kneels before the Virgin Mary under an arch."),
        ("religious", "Saint Jerome in the Wilderness",
         "Saint Jerome in the wilderness, praying before a cross among rocks."),
        ("religious", "The Crucifixion",
         "The Crucifixion with the Virgin and Saint John standing at the foot of the cross."),
    ],
    "figures": [
        ("mythological", "Venus Rising from the Sea",
         "Venus rising from the sea on a shell, greeted by nymphs and winds."),
        ("mythological", "The Judgment of Paris",
         "The judgment of Paris: three goddesses before the shepherd in a landscape."),
        ("historical", "The Battle on the Plain",
         "A cavalry battle on a wide plain, horsemen clashing under banners."),
        ("genre", "Peasants Dancing at a Village Fair",
         "Peasants dancing at a village fair, with musicians and a tavern."),
        ("genre", "Skaters on a Frozen Canal",
         "Skaters and children playing on a frozen canal in winter."),
    ],
    "abstract": [
        ("other", "Composition with Red, Blue and Yellow",
         "Abstract composition of red, blue and yellow rectangles divided by black lines."),
        ("other", "Circles and Lines",
         "Abstract composition of coloured circles and crossing lines on a white ground."),
        ("other", "Composition No. 7",
         "Geometric abstraction with overlapping squares and triangles."),
    ],
    "study": [
        ("study", "Study of a Horse's Head",
         "Study of a horse's head in brown ink on paper."),
        ("study", "Study of Hands",
         "Sheet of studies of hands and a drapery, in pen and ink."),
        ("study", "Study of a Seated Figure",
         "Study of a seated figure with a book, drawn with fine hatching."),
    ],
}

PALETTE_WORDS = {
    "dutch": "warm browns and ochres", "venetian": "deep reds, gold and ultramarine",
    "impression": "light blues, lilac and pale greens", "nocturne": "dark blues and black",
    "storm": "cold greys and dark teal", "azure": "bright azure and white",
    "autumn": "orange and russet tones", "primary": "primary colours",
    "pastel": "soft pastel colours", "spanish": "black, crimson and grey",
    "gold": "gold, crimson and blue", "sepia": "brown ink on cream paper",
    "winter": "wintry whites and pale blues", "fauve": "vivid green, magenta and orange",
}
BRUSH_WORDS = {
    "smooth": "smooth, blended brushwork", "glazed": "thin glazes and soft edges",
    "dabs": "small dabs of broken colour", "swirl": "swirling, restless strokes",
    "horizontal": "long horizontal strokes", "vertical": "vertical strokes",
    "diagonal": "diagonal strokes", "flat": "flat areas of colour",
    "hatching": "fine hatching",
}

# Portrait subjects' costume colours (index into SUBJECTS["portrait"]).
COSTUMES = [(170, 24, 28), (20, 18, 18), (16, 16, 20), (40, 70, 160), (100, 66, 40)]
