"""Colour and size vocabularies (English and Spanish) and the regular expressions built from them.

All surface forms are written as `features.text.normalize_text` leaves them: lower case, no accents,
punctuation replaced by single spaces.
"""

from __future__ import annotations

import re

# Canonical colour -> surface forms. Words that are mostly something else in product titles
# ("wine" cooler, "chocolate", "lime", "sand", "cafe") are left out on purpose.
COLORS: dict[str, tuple[str, ...]] = {
    "black": ("black", "blk", "jet black", "matte black", "negro", "negra", "noir", "schwarz"),
    "white": ("white", "wht", "pure white", "blanco", "blanca", "blanc", "weiss"),
    "ivory": ("ivory", "cream", "off white", "crema", "marfil", "hueso"),
    "grey": (
        "grey", "gray", "gry", "gris", "heather grey", "heather gray", "light grey", "light gray", "gris claro",
        "space grey", "space gray", "gris espacial",
    ),
    # Catalogs sell charcoal and olive next to grey and green as separate colours.
    "charcoal": (
        "charcoal", "charcoal grey", "charcoal gray", "carbon", "graphite", "grafito", "dark grey", "dark gray",
        "gris oscuro", "gris carbon", "anthracite", "antracita",
    ),
    "silver": ("silver", "slvr", "plata", "plateado", "plateada", "chrome", "cromo", "argent"),
    "gold": ("gold", "golden", "oro", "dorado", "dorada"),
    "rose gold": ("rose gold", "oro rosa", "rosegold"),
    "red": ("red", "rojo", "roja", "rouge", "rot", "crimson", "scarlet", "escarlata"),
    "burgundy": ("burgundy", "maroon", "wine", "vino", "granate", "guinda", "burdeos", "borgona", "bordeaux"),
    "pink": ("pink", "pnk", "hot pink", "rosa", "rosado", "rosada", "fuchsia", "fucsia", "magenta"),
    "orange": ("orange", "naranja", "anaranjado", "anaranjada"),
    "yellow": ("yellow", "ylw", "amarillo", "amarilla", "mustard", "mostaza", "gelb"),
    "green": ("green", "grn", "verde", "dark green", "forest green", "mint", "menta"),
    "olive": ("olive", "olive green", "oliva", "verde oliva"),
    "teal": ("teal", "turquoise", "turquesa", "verde azulado", "aqua", "cyan", "cian"),
    "blue": ("blue", "azul", "indigo", "royal blue", "azul rey", "cobalt", "cobalt blue", "bleu", "blau"),
    "light blue": ("light blue", "sky blue", "baby blue", "celeste", "azul claro", "azul cielo"),
    "navy": ("navy", "nvy", "navy blue", "dark blue", "midnight blue", "azul marino", "marino", "azul oscuro"),
    "purple": ("purple", "morado", "morada", "violet", "violeta", "lilac", "lila", "lavender", "lavanda", "purpura"),
    "brown": ("brown", "brn", "marron", "cafe oscuro", "chestnut", "castano"),
    "beige": ("beige", "beis", "tan", "sand", "camel", "khaki", "caqui", "taupe", "nude"),
    # denim washes are the colour dimension of jeans
    "light wash": ("light wash", "lavado claro"),
    "medium wash": ("medium wash", "mid wash", "lavado medio"),
    "dark wash": ("dark wash", "dark indigo", "lavado oscuro", "raw denim", "rinse"),
    "multicolor": ("multicolor", "multicolour", "multi color", "multi colour", "multicolored", "multicolores"),
    "clear": ("clear", "transparent", "transparente"),
}

# Phrases whose colour word is not a colour: removed before colour extraction.
COLOR_STOP_PHRASES: tuple[str, ...] = (
    "black and decker", "black decker", "black friday", "black box", "black ops", "red hat", "redhat",
    "red dead", "green day", "green mountain", "white noise", "white paper", "blu ray", "blue ray",
    "blue tooth", "orange county", "silver surfer", "gold edition", "goldeneye", "silver edition",
    "clear view", "clearview", "clear type", "cleartype",
)

# Edition words: canonical -> surface forms. Two listings naming different editions of a product
# (software "standard" vs "professional", "mac" vs "win") are different products.
EDITIONS: dict[str, tuple[str, ...]] = {
    "standard": ("standard", "std", "estandar"),
    "professional": ("professional", "pro", "profesional"),
    "deluxe": ("deluxe", "dlx"),
    "premium": ("premium", "premier"),
    "home": ("home", "hogar"),
    "basic": ("basic", "basico"),
    "ultimate": ("ultimate",),
    "enterprise": ("enterprise",),
    "business": ("business", "small business"),
    "academic": ("academic", "education", "edu", "student", "teacher", "estudiante"),
    "upgrade": ("upgrade", "upg", "actualizacion"),
    "oem": ("oem",),
    "mac": ("mac", "macintosh", "osx", "os x"),
    "windows": ("windows", "win", "pc"),
    "server": ("server",),
    "express": ("express",),
    "plus": ("plus",),
    "lite": ("lite",),
    "trial": ("trial",),
}

# Letter sizes: surface form -> canonical.
LETTER_SIZES: dict[str, str] = {
    "xxs": "xxs", "2xs": "xxs", "xx small": "xxs", "extra extra small": "xxs",
    "xs": "xs", "x small": "xs", "extra small": "xs", "extra chica": "xs", "extra pequena": "xs",
    "s": "s", "sm": "s", "small": "s", "pequeno": "s", "pequena": "s", "chica": "s", "chico": "s", "ch": "s",
    "m": "m", "md": "m", "medium": "m", "mediano": "m", "mediana": "m", "med": "m",
    "l": "l", "large": "l", "grande": "l", "g": "l", "lg": "l", "lrg": "l",
    "xl": "xl", "x large": "xl", "extra large": "xl", "extra grande": "xl", "1xl": "xl", "xg": "xl", "xlg": "xl",
    "xxl": "xxl", "2xl": "xxl", "xxg": "xxl", "2xg": "xxl", "xx large": "xxl", "2x large": "xxl",
    "extra extra large": "xxl",
    "xxxl": "xxxl", "3xl": "xxxl", "xxxg": "xxxl", "xxx large": "xxxl", "3x large": "xxxl",
    "xxxxl": "xxxxl", "4xl": "xxxxl", "4x large": "xxxxl",
    "one size": "onesize", "talla unica": "onesize", "taille unique": "onesize", "osfa": "onesize",
    # bedding and towels
    "twin": "twin", "twin size": "twin", "t": "twin", "individual": "twin",
    "full": "full", "full size": "full", "double": "full", "matrimonial": "full",
    "queen": "queen", "queen size": "queen", "q": "queen",
    "king": "king", "king size": "king", "k": "king",
    "california king": "cal king", "cal king": "cal king", "king california": "cal king",
    "washcloth": "washcloth", "wash cloth": "washcloth", "toallita": "washcloth", "pano": "washcloth",
    "hand towel": "hand towel", "hand": "hand towel", "toalla de mano": "hand towel", "mano": "hand towel",
    "bath towel": "bath towel", "bath": "bath towel", "toalla de bano": "bath towel", "bano": "bath towel",
    "bath sheet": "bath sheet", "toalla grande": "bath sheet", "sabana de bano": "bath sheet",
    # baby wear
    "newborn": "newborn", "nb": "newborn", "recien nacido": "newborn", "rn": "newborn", "0-1m": "newborn",
}
# Letter sizes that are unambiguous anywhere in a title; "s", "m", "l", "small", "large"... need context.
_SAFE_LETTER_SIZES = tuple(k for k in LETTER_SIZES if k not in {
    "s", "m", "l", "small", "medium", "large", "grande", "pequeno", "pequena", "chica", "chico",
    "mediano", "mediana", "med", "lg", "sm", "md", "g", "lrg", "ch", "xlg",
    "twin", "t", "individual", "full", "double", "matrimonial", "q", "k", "hand", "bath",
    "pano", "mano", "bano", "nb", "rn", "0-1m",
})

SIZE_KEYWORDS: tuple[str, ...] = ("size", "talla", "taille", "tamano", "sz")
MONTH_WORDS = r"(?:months?|meses|mes|mos?)"
SHOE_SYSTEMS: dict[str, str] = {"eu": "eu", "eur": "eu", "us": "us", "usa": "us", "uk": "uk"}


def alternation(words: list[str] | tuple[str, ...]) -> str:
    """Regex alternation of literal phrases, longest first so multi-word names win."""
    return "|".join(re.escape(w).replace(r"\ ", " ") for w in sorted(set(words), key=lambda w: (-len(w), w)))


COLOR_SURFACE: dict[str, str] = {surface: canon for canon, forms in COLORS.items() for surface in forms}
COLOR_RE = r"\b(?:" + alternation(list(COLOR_SURFACE)) + r")\b"
COLOR_STOP_RE = r"\b(?:" + alternation(COLOR_STOP_PHRASES) + r")\b"

EDITION_SURFACE: dict[str, str] = {surface: canon for canon, forms in EDITIONS.items() for surface in forms}
EDITION_RE = r"\b(?:" + alternation(list(EDITION_SURFACE)) + r")\b"

_NUM = r"\d{1,2}(?:\.5)?"
_SHOE = (
    r"(?:eur? ?(?:1[6-9]|[2-4]\d|5[0-2])|(?:us|usa) ?(?:1\d|20|\d)|uk ?(?:1\d|2[0-8]|[1-9]))(?:\.5)?"
)
_KEYWORD = r"(?:" + alternation(SIZE_KEYWORDS) + r")"
_ANY_LETTER = alternation(list(LETTER_SIZES))
# Baby-wear ranges written with a bare "m" ("6-12m") must be usual ranges, since "1-20m" is a length.
_MONTH_RANGE = r"(?:0|1|3|6|9|12|18|24) (?:3|6|9|12|18|24|36) ?m"
_MONTHS = (r"\d{1,2} \d{1,2} ?" + MONTH_WORDS, _MONTH_RANGE, r"\d{1,2} ?" + MONTH_WORDS)
_WAIST = (
    r"w ?\d{2} ?l ?\d{2}", r"cintura \d{2} largo \d{2}", r"(?:2[4-9]|3\d|4[0-8]) ?x ?(?:2[6-9]|3[0-8])",
    r"\d{2} ?w ?x? ?\d{2} ?l",
)
_SIZE_PARTS = (
    # "size m", "talla 42", "size eu 44", "talla 6 12 meses"
    _KEYWORD + r" (?:" + _KEYWORD + r" )?(?:" + "|".join(_MONTHS + _WAIST + (_SHOE, _ANY_LETTER, _NUM)) + r")",
    # "xl", "x large", "extra large", "2xl"
    alternation(_SAFE_LETTER_SIZES),
    # shoe sizes "eu 44", "us 10.5", "uk8", "44 eu"
    _SHOE,
    r"(?:1[6-9]|[2-4]\d|5[0-2])(?:\.5)? (?:eu|eur)",
    # baby wear "6 12 months", "6 12m", "12 months"; waist x length "w32 l34", "32x34"
    *_MONTHS,
    *_WAIST,
)
SIZE_RE = r"\b(?:" + "|".join(_SIZE_PARTS) + r")\b"
# Forms accepted only as a whole size-column value: "32/30", "30W x 34L", "9 1/2", "25 cm", "16 x 28 in".
_COLUMN_ONLY = (
    r"(?:2[4-9]|3\d|4[0-8]) (?:2[6-9]|3[0-8])",
    r"\d{1,2} 1 2",
    r"\d{1,3}(?:\.\d)?(?: ?x ?\d{1,3}(?:\.\d)?)? ?(?:in|inch|inches|pulgadas?|cm)",
)
# A whole size-column value: any size form, including bare numbers and bare letters.
SIZE_VALUE_RE = (
    r"^(?:" + _KEYWORD + r" )?(?:" + "|".join(_MONTHS + _WAIST + _COLUMN_ONLY + (_SHOE, _ANY_LETTER, _NUM)) + r")$"
)
# Punctuation that separates the parts of a title ("Shirt, Olive, L" / "Sheets | Full" / "Pan - 30 cm").
# A part that is nothing but colours and a size-column value is a size, however bare ("full", "11"),
# and so is what follows a part's last colour (AFTER_LAST_COLOR_RE).
TITLE_PART_SEPARATORS = r"\s*[,|;()\[\]]\s*|\s+[-\u2013\u2014]\s+|\s+by\s+"
# A bare s/m/l between a word and a colour ("hoodie m black") is a size; this rewrite gives it the
# "size" keyword so SIZE_RE sees it.
BARE_SIZE_REWRITES: tuple[tuple[str, str], ...] = (
    (r"\b([a-z]{2,}) ([sml]) (" + alternation(list(COLOR_SURFACE)) + r")\b", "${1} size ${2} ${3}"),
)
# What follows the last colour of a title part; a size when it is a whole size value, however bare
# ("... Off-White Full", "Sneakers red 7.5", "Skillet Gris 20 cm").
AFTER_LAST_COLOR_RE = r"^.*" + COLOR_RE + r" (.+)$"

# Size conversions used when two listings' sizes are compared (features.attributes.comparable_sizes).
# Men's shoes, EU -> US (UK is US - 1); dresses are US n = EU n + 32.
EU_TO_US_SHOE: dict[float, float] = {
    39.0: 6.5, 40.0: 7.0, 40.5: 7.5, 41.0: 8.0, 42.0: 8.5, 42.5: 9.0, 43.0: 9.5, 44.0: 10.0, 44.5: 10.5,
    45.0: 11.0, 45.5: 11.5, 46.0: 12.0, 47.0: 12.5, 47.5: 13.0, 48.5: 14.0,
}
DRESS_EU_OFFSET = 32
SHOE_RE = (
    r"\b(?:shoes?|sneakers?|trainers?|boots?|sandals?|loafers?|heels|tenis|zapatillas?|zapatos?|botas?|sandalias?)\b"
)
# Standard towel dimensions in inches.
TOWEL_DIMENSIONS: dict[str, str] = {
    "13x13in": "washcloth", "16x28in": "hand towel", "16x30in": "hand towel", "27x54in": "bath towel",
    "30x56in": "bath towel", "35x70in": "bath sheet",
}
# On denim, blue shades name the wash: "Azul Oscuro" jeans are dark-wash jeans.
DENIM_RE = r"\b(?:jeans?|denim|vaqueros?|mezclilla)\b"
DENIM_COLORS: dict[str, str] = {"navy": "dark wash", "light blue": "light wash"}
