"""Seeded synthetic product catalog with duplicate-listing and variant-family ground truth.

Structure: a *line* (brand + model line, e.g. "Voltix Nova 7 Pro") has one to four *spec* siblings
(capacity, screen size, fit, thread count...), each its own family and a hard negative for the
others; a *family* holds products that differ only in colour and/or size; a *product* is listed
one to three times by sellers who write it differently. Every random choice is drawn from one
``numpy.random.Generator`` in a fixed order, so a seed gives byte-identical output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from rich.progress import track

# (English spellings, Spanish spellings) of one value.
Spell = tuple[tuple[str, ...], tuple[str, ...]]

OUTPUT_COLUMNS = ("id", "title", "brand", "description", "price", "category", "color", "size",
                  "model_number", "gtin", "product_id", "family_id")

# Seller behaviour, as probabilities per listing unless stated.
P_DUPLICATED = 0.30          # per product: listed two or three times
P_THIRD_COPY = 0.35          # per duplicated product
P_SPEC_SIBLINGS = 0.5        # per line: more than one capacity/size/fit family
P_MISSING_VARIANT = 0.15     # per colour/size grid cell of a family
P_SPANISH_TITLE = 0.15
P_BRAND_NOT_IN_TITLE = 0.15
P_BRAND_COLUMN_MISSING = 0.2
P_MODEL_IN_TITLE = 0.25
P_MODEL_COLUMN = 0.65
P_MODEL_SUFFIX_DROPPED = 0.3
P_GTIN = 0.4
P_NO_DESCRIPTION = 0.25
P_HTML_DESCRIPTION = 0.15
P_ABBREVIATED = 0.15
P_TYPO = 0.12
P_NO_PRICE = 0.03
PRICE_JITTER = 0.025         # log-normal sigma between listings of one product
CHUNK = 200_000              # listings rendered at once; bounds peak memory
LINES_PER_BRAND = 120        # big catalogs get more brands rather than brands with thousands of lines

COLOURS: dict[str, tuple[str, Spell]] = {
    "black": ("BK", (("Black", "black", "BLACK", "Blk"), ("Negro", "negro"))),
    "white": ("WH", (("White", "white", "WHT"), ("Blanco", "blanco"))),
    "navy": ("NV", (("Navy", "navy blue", "Navy Blue", "NAVY"), ("Azul Marino", "azul marino"))),
    "grey": ("GY", (("Grey", "Gray", "gray", "grey"), ("Gris", "gris"))),
    "blue": ("BL", (("Blue", "blue"), ("Azul", "azul"))),
    "light_blue": ("LB", (("Light Blue", "Sky Blue", "light blue"), ("Azul Claro", "celeste"))),
    "red": ("RD", (("Red", "red"), ("Rojo", "rojo"))),
    "green": ("GN", (("Green", "green"), ("Verde", "verde"))),
    "olive": ("OL", (("Olive", "Olive Green", "olive"), ("Verde Oliva",))),
    "beige": ("BG", (("Beige", "Sand", "beige"), ("Beige", "Beis"))),
    "khaki": ("KH", (("Khaki", "khaki"), ("Caqui",))),
    "pink": ("PK", (("Pink", "pink"), ("Rosa", "rosado"))),
    "purple": ("PU", (("Purple", "purple", "Violet"), ("Morado", "Violeta"))),
    "yellow": ("YL", (("Yellow", "yellow"), ("Amarillo",))),
    "silver": ("SV", (("Silver", "silver"), ("Plateado", "Plata"))),
    "gold": ("GD", (("Gold", "gold"), ("Dorado", "Oro"))),
    "graphite": ("GR", (("Graphite", "Space Gray", "Space Grey"), ("Grafito",))),
    "burgundy": ("BU", (("Burgundy", "Maroon", "Wine"), ("Vino", "Borgoña", "Guinda"))),
    "cream": ("CR", (("Cream", "Ivory", "Off-White"), ("Crema", "Marfil"))),
    "charcoal": ("CH", (("Charcoal", "Charcoal Grey", "Dark Gray"), ("Gris Oscuro", "Carbón"))),
    "teal": ("TL", (("Teal", "teal"), ("Verde Azulado",))),
    "dark_wash": ("DW", (("Dark Wash", "Dark Indigo", "dark wash"), ("Lavado Oscuro", "Azul Oscuro"))),
    "medium_wash": ("MW", (("Medium Wash", "Mid Wash"), ("Lavado Medio",))),
    "light_wash": ("LW", (("Light Wash", "light wash"), ("Lavado Claro",))),
}


def _num(x: float) -> str:
    return f"{x:g}"


def _letter_sizes() -> dict[str, Spell]:
    return {
        "xs": (("XS", "Extra Small", "X-Small"), ("XS", "Extra Chica")),
        "s": (("S", "Small", "SM"), ("CH", "Chica")),
        "m": (("M", "Medium", "MD"), ("M", "Mediana")),
        "l": (("L", "Large", "LG"), ("G", "Grande")),
        "xl": (("XL", "Extra Large", "X-Large"), ("XG", "Extra Grande")),
        "xxl": (("XXL", "2XL", "XX-Large"), ("XXG", "2XG")),
    }


def _shoe_sizes() -> dict[str, Spell]:
    eu = {7: 40, 7.5: 40.5, 8: 41, 8.5: 42, 9: 42.5, 9.5: 43, 10: 44, 10.5: 44.5, 11: 45, 11.5: 45.5,
          12: 46, 13: 47.5}
    out = {}
    for us, e in eu.items():
        u, e_, uk = _num(us), _num(e), _num(us - 1)
        frac = f"{int(us)} 1/2" if us % 1 else u
        out[f"us{u}"] = ((u, f"US {u}", f"Size {u}", f"EU {e_}", f"UK {uk}", frac), (f"Talla {e_}", f"EU {e_}", f"US {u}"))
    return out


def _jeans_sizes() -> dict[str, Spell]:
    combos = [(28, 30), (28, 32), (30, 30), (30, 32), (30, 34), (32, 30), (32, 32), (32, 34), (34, 30),
              (34, 32), (34, 34), (36, 30), (36, 32), (36, 34), (38, 32), (40, 32)]
    return {f"{w}x{l}": ((f"{w}x{l}", f"{w} x {l}", f"W{w} L{l}", f"{w}W x {l}L", f"{w}/{l}"),
                         (f"{w}x{l}", f"Cintura {w} Largo {l}")) for w, l in combos}


def _dress_sizes() -> dict[str, Spell]:
    return {f"dress{n}": ((str(n), f"Size {n}", f"US {n}", f"EU {n + 32}"), (f"Talla {n + 32}", f"EU {n + 32}", f"US {n}"))
            for n in range(0, 18, 2)}


def _baby_sizes() -> dict[str, Spell]:
    out: dict[str, Spell] = {"newborn": (("Newborn", "NB", "0-1 Months"), ("Recién Nacido", "RN"))}
    for lo, hi in ((0, 3), (3, 6), (6, 9), (9, 12), (12, 18), (18, 24)):
        out[f"{lo}-{hi}m"] = ((f"{lo}-{hi} Months", f"{lo}-{hi}M", f"{lo}-{hi} mo"), (f"{lo}-{hi} Meses", f"{lo}-{hi} meses"))
    return out


def _inch_sizes(prefix: str, inches: tuple[int, ...]) -> dict[str, Spell]:
    return {f"{prefix}{i}": ((f'{i}"', f"{i} in", f"{i}-Inch", f"{round(i * 2.54)} cm"), (f"{round(i * 2.54)} cm", f"{i} pulgadas"))
            for i in inches}


SIZES: dict[str, Spell] = {
    **_letter_sizes(), **_shoe_sizes(), **_jeans_sizes(), **_dress_sizes(), **_baby_sizes(),
    **_inch_sizes("pan", (8, 10, 12)),
    "washcloth": (("Washcloth", "Wash Cloth", "13 x 13 in"), ("Toallita", "Paño")),
    "hand": (("Hand Towel", "Hand", "16 x 28 in"), ("Toalla de Mano", "Mano")),
    "bath": (("Bath Towel", "Bath", "27 x 54 in"), ("Toalla de Baño", "Baño")),
    "bath_sheet": (("Bath Sheet", "35 x 70 in"), ("Toalla Grande", "Sábana de Baño")),
    "twin": (("Twin", "Twin Size", "T"), ("Individual",)),
    "full": (("Full", "Full Size", "Double"), ("Matrimonial",)),
    "queen": (("Queen", "Queen Size", "Q"), ("Queen", "Queen Size")),
    "king": (("King", "King Size", "K"), ("King", "King Size")),
    "cal_king": (("California King", "Cal King"), ("King California",)),
}


def _capacities(gbs: tuple[int, ...]) -> tuple[Spell, ...]:
    def one(gb: int) -> Spell:
        n, unit = (gb // 1024, "TB") if gb >= 1024 else (gb, "GB")
        return (f"{n}{unit}", f"{n} {unit}", f"{n}{unit.lower()}"), (f"{n}{unit}", f"{n} {unit}")
    return tuple(one(g) for g in gbs)


def _laptop_configs() -> tuple[Spell, ...]:
    def one(ram: int, ssd: str) -> Spell:
        return ((f"{ram}GB RAM {ssd} SSD", f"{ram}GB/{ssd}", f"{ram} GB RAM, {ssd} SSD"),
                (f"{ram}GB RAM {ssd} SSD", f"{ram} GB de RAM, {ssd} SSD"))
    return tuple(one(r, s) for r, s in ((8, "256GB"), (8, "512GB"), (16, "512GB"), (16, "1TB"), (32, "1TB")))


def _screens() -> tuple[Spell, ...]:
    return tuple(((f'{i}"', f"{i} in", f"{i}-Inch", f"{i} Inch Class", f"{round(i * 2.54)} cm"),
                  (f'{i}"', f"{i} Pulgadas", f"{round(i * 2.54)} cm")) for i in (32, 43, 50, 55, 65, 75, 85))


def _generations() -> tuple[Spell, ...]:
    ordinal = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th"}
    return tuple(((f"({ordinal[g]} Gen)", f"Gen {g}", f"{ordinal[g]} Generation"), (f"{g}ª Generación", f"Gen {g}"))
                 for g in range(1, 5))


@dataclass(frozen=True)
class Kind:
    """One product kind: its vocabulary and how its lines, families and variants are shaped."""

    name: str
    weight: float                       # share of lines
    category: Spell
    nouns: Spell
    brands: tuple[tuple[str, str], ...]  # (name, model-number prefix)
    line_parts: tuple[tuple[str, ...], ...]  # display order; the last varies fastest within a brand
    specs: tuple[Spell, ...]            # siblings of a line: different products, different families
    max_specs: int
    spec_price_step: float
    palette: tuple[str, ...]
    sizes: tuple[str, ...]              # size ladder, smallest first; empty when sizeless
    size_price_step: float
    max_colours: int
    max_sizes: int
    p_family: float                     # probability a family has more than one variant
    median_price: float
    colour_in_model: bool               # colour code appended to the model number (SKU style)
    features: Spell


_COLLECTIONS = ("Essential", "Classic", "Heritage", "Weekend", "Urban", "Coastal", "Everyday", "Premium",
                "Vintage", "Active", "Harbor", "Summit", "Meadow", "Alpine", "Metro", "Sunset", "Canyon",
                "Prairie", "Legacy", "Studio")
_NUMBERS = tuple(str(n) for n in range(2, 41))

KINDS: tuple[Kind, ...] = (
    Kind("phone", 0.10, (("Electronics > Cell Phones", "Cell Phones & Smartphones", "Phones"), ("Electrónica > Celulares", "Celulares")),
         (("Smartphone", "Unlocked Smartphone", "Cell Phone", "5G Smartphone"), ("Teléfono Inteligente", "Celular Desbloqueado", "Smartphone")),
         (("Voltix", "VX"), ("Nordell", "ND"), ("Kaido", "KD"), ("Lumio", "LM"), ("Zentra", "ZT"), ("Aperix", "AP"), ("Solace", "SL"), ("Quanta Mobile", "QM")),
         (("Nova", "Pulse", "Orbit", "Zen", "Edge", "Prime", "Flex", "Spark", "Lumen", "Astra", "Vega", "Helix"), _NUMBERS,
          ("", "Plus", "Lite", "Pro", "Ultra", "Mini")),
         _capacities((64, 128, 256, 512, 1024)), 4, 1.18,
         ("black", "white", "blue", "green", "purple", "silver", "gold", "graphite", "pink", "red"), (), 1.0, 4, 1, 0.7, 450.0, True,
         (("6.1-inch OLED display", "All-day battery with fast charging", "Triple camera with night mode", "5G connectivity",
           "Water and dust resistant", "Face unlock and fingerprint sensor"),
          ("Pantalla OLED de 6.1 pulgadas", "Batería para todo el día con carga rápida", "Cámara triple con modo nocturno", "Conectividad 5G"))),
    Kind("laptop", 0.06, (("Electronics > Computers > Laptops", "Laptops", "Notebooks"), ("Electrónica > Computadoras > Laptops", "Laptops")),
         (("Laptop", "Notebook Computer", "Thin & Light Laptop"), ("Laptop", "Portátil", "Computadora Portátil")),
         (("Nordell", "ND"), ("Vertexa", "VT"), ("Kaido", "KD"), ("Orion Systems", "OS"), ("Pinebook", "PB"), ("Zentra", "ZT")),
         (("AeroBook", "ZenSlate", "Vertex", "Inspira", "Nimbus", "Stratos", "Quill", "Apex", "Carbon", "Swift"), _NUMBERS,
          ("", "Plus", "Pro", "Air", "Flip", "X")),
         _laptop_configs(), 3, 1.25, ("silver", "graphite", "black", "blue"), (), 1.0, 2, 1, 0.4, 900.0, True,
         (("Backlit keyboard", "Full HD IPS display", "Up to 12 hours of battery life", "Fingerprint reader",
           "Wi-Fi 6 and Bluetooth 5.2", "Aluminium chassis"),
          ("Teclado retroiluminado", "Pantalla Full HD IPS", "Hasta 12 horas de batería", "Lector de huellas"))),
    Kind("headphones", 0.08, (("Electronics > Audio > Headphones", "Headphones", "Audio"), ("Electrónica > Audio > Audífonos", "Audífonos")),
         (("Wireless Headphones", "Bluetooth Headphones", "Noise Cancelling Headphones", "Over-Ear Headphones"),
          ("Audífonos Inalámbricos", "Auriculares Bluetooth")),
         (("Voltix", "VX"), ("Sonaro", "SR"), ("Auralis", "AU"), ("Bassik", "BK"), ("Kaido", "KD"), ("Hushwave", "HW"), ("Tempo Audio", "TA")),
         (("SoundPod", "AirWave", "BassLine", "QuietPro", "Echo", "Studio", "Tempo", "Rhythm", "Drift", "Halo"), _NUMBERS,
          ("", "Pro", "Max", "Sport", "Lite", "ANC")),
         _generations(), 2, 1.1, ("black", "white", "navy", "grey", "beige", "green", "pink", "blue"), (), 1.0, 5, 1, 0.7, 150.0, True,
         (("Active noise cancellation", "30-hour battery life", "Bluetooth 5.3 with multipoint", "Built-in microphone for calls",
           "Foldable design with carrying case"),
          ("Cancelación activa de ruido", "30 horas de batería", "Micrófono integrado", "Diseño plegable con estuche"))),
    Kind("tv", 0.06, (("Electronics > TV & Video > Televisions", "Televisions", "TVs"), ("Electrónica > Televisores", "Pantallas")),
         (("4K UHD Smart TV", "Smart TV", "LED 4K Television", "QLED TV"), ("Smart TV 4K", "Televisor LED 4K", "Pantalla 4K")),
         (("Lumio", "LM"), ("Vistara", "VS"), ("Kaido", "KD"), ("Nordell", "ND"), ("Brightline", "BL"), ("Orion Systems", "OS")),
         (("VisionQ", "Crystal", "Neo", "Aurora", "Spectra", "Horizon", "Vivid", "Lumina"),
          tuple(f"{c}{n}" for c in "QUXCS" for n in range(5, 10)), ("", "Pro", "Plus", "Max")),
         _screens(), 4, 1.35, ("black", "silver"), (), 1.0, 2, 1, 0.1, 600.0, True,
         (("4K Ultra HD resolution", "HDR10+ and Dolby Vision", "Built-in streaming apps", "Voice remote included",
           "Three HDMI 2.1 ports"),
          ("Resolución 4K Ultra HD", "Aplicaciones de streaming integradas", "Control remoto por voz"))),
    Kind("shirt", 0.12, (("Clothing > Men > Shirts", "Men's Shirts", "Shirts & Tops"), ("Ropa > Hombre > Camisas", "Camisas")),
         (("Shirt", "Button-Down Shirt", "Long Sleeve Shirt", "Men's Shirt"), ("Camisa", "Camisa de Manga Larga")),
         (("North Harbor", "NH"), ("Alder & Finch", "AF"), ("Cobalt Row", "CR"), ("Maple Street", "MS"), ("Fieldhouse", "FH"),
          ("Tidewater", "TW"), ("Urban Loom", "UL"), ("Brookline", "BRK")),
         (_COLLECTIONS, ("Oxford", "Poplin", "Linen", "Flannel", "Chambray", "Twill", "Stretch", "Performance", "Organic Cotton", "Jersey"),
          ("", "Pocket", "Easy Care", "Washed", "Spread Collar", "Tailored")),
         ((("Slim Fit", "Slim-Fit", "Slim"), ("Corte Slim", "Slim Fit")), (("Regular Fit", "Regular"), ("Corte Regular",)),
          (("Classic Fit", "Classic-Fit"), ("Corte Clásico",))), 2, 1.0,
         ("white", "light_blue", "navy", "black", "grey", "pink", "green", "olive", "burgundy", "khaki"),
         ("xs", "s", "m", "l", "xl", "xxl"), 1.0, 3, 5, 0.75, 45.0, False,
         (("100% cotton", "Button-down collar", "Machine washable", "Tailored through the chest", "Wrinkle resistant"),
          ("100% algodón", "Lavable a máquina", "Cuello abotonado"))),
    Kind("jeans", 0.09, (("Clothing > Men > Jeans", "Jeans", "Denim"), ("Ropa > Hombre > Jeans", "Pantalones de Mezclilla")),
         (("Jeans", "Denim Jeans", "Men's Jeans", "Five-Pocket Jean"), ("Jeans", "Pantalón de Mezclilla", "Vaqueros")),
         (("Riveted", "RV"), ("Cobalt Row", "CR"), ("Denim Union", "DU"), ("North Harbor", "NH"), ("Blue Mesa", "BM"), ("Copper Yard", "CY")),
         (_COLLECTIONS, ("Stretch", "Selvedge", "Organic", "Comfort", "Stonewash", "Flex", "Raw", "Recycled"),
          ("", "Five-Pocket", "Authentic", "Signature", "Workwear")),
         ((("Skinny Fit", "Skinny"), ("Corte Skinny",)), (("Slim Fit", "Slim"), ("Corte Slim",)),
          (("Straight Fit", "Straight Leg", "Straight"), ("Corte Recto",)), (("Relaxed Fit", "Relaxed"), ("Corte Holgado",)),
          (("Bootcut", "Boot Cut"), ("Corte Bota",))), 3, 1.0,
         ("dark_wash", "medium_wash", "light_wash", "black", "grey"), tuple(_jeans_sizes()), 1.0, 2, 6, 0.75, 60.0, False,
         (("98% cotton, 2% elastane", "Five-pocket styling", "Zip fly with button closure", "Sits at the waist", "Machine washable"),
          ("98% algodón, 2% elastano", "Cinco bolsillos", "Lavable a máquina"))),
    Kind("dress", 0.08, (("Clothing > Women > Dresses", "Dresses", "Women's Dresses"), ("Ropa > Mujer > Vestidos", "Vestidos")),
         (("Dress", "Women's Dress"), ("Vestido", "Vestido para Mujer")),
         (("Marigold", "MG"), ("Belle Rue", "BR"), ("Linden & Vine", "LV"), ("Solstice", "SO"), ("Alder & Finch", "AF"), ("Poppy Lane", "PL")),
         (_COLLECTIONS, ("Wrap", "Shift", "Slip", "Shirt", "Sweater", "Tiered", "Smocked", "Pleated"),
          ("", "Floral", "Linen", "Satin", "Jersey", "Eyelet")),
         ((("Mini",), ("Mini", "Corto")), (("Midi", "Midi Length"), ("Midi", "Largo Midi")), (("Maxi", "Maxi Length"), ("Maxi", "Largo"))),
         2, 1.1, ("black", "navy", "red", "green", "pink", "burgundy", "cream", "blue"), tuple(_dress_sizes()), 1.0, 3, 5, 0.7, 70.0, False,
         (("Lightweight woven fabric", "Adjustable waist tie", "Fully lined", "Hidden side pocket", "Machine washable"),
          ("Tela ligera", "Forrado", "Lavable a máquina", "Bolsillo lateral oculto"))),
    Kind("babywear", 0.07, (("Baby > Clothing > Bodysuits", "Baby Clothing", "Infant Bodysuits"), ("Bebé > Ropa > Pañaleros", "Ropa de Bebé")),
         (("Baby Bodysuit", "Bodysuits", "Infant Onesie", "Baby One-Piece"), ("Pañalero", "Body para Bebé")),
         (("Little Sprout", "LS"), ("Tiny Tots", "TT"), ("Bitty Bear", "BB"), ("Cuddle Co", "CC"), ("Sprig", "SP"), ("Moonbeam Baby", "MB")),
         (_COLLECTIONS, ("Organic Cotton", "Short Sleeve", "Long Sleeve", "Ribbed", "Striped", "Floral", "Printed", "Footed"),
          ("", "Essentials", "Softest", "Cozy")),
         tuple(((f"{n}-Pack", f"{n} Pack", f"Pack of {n}"), (f"Paquete de {n}", f"{n} piezas")) for n in (3, 5, 7)), 2, 1.5,
         ("white", "pink", "light_blue", "yellow", "grey", "green", "cream"), tuple(_baby_sizes()), 1.0, 3, 4, 0.7, 20.0, False,
         (("Soft organic cotton", "Nickel-free snaps", "Tag-free for comfort", "Envelope neckline for easy dressing"),
          ("Algodón orgánico suave", "Broches sin níquel", "Sin etiquetas"))),
    Kind("shoes", 0.11, (("Shoes > Athletic > Running", "Running Shoes", "Sneakers"), ("Calzado > Deportivo > Running", "Tenis")),
         (("Running Shoes", "Sneakers", "Trainers", "Athletic Shoe"), ("Tenis", "Zapatillas para Correr")),
         (("Stridex", "SX"), ("Fleetfoot", "FF"), ("Trailborn", "TB"), ("Apex Run", "AR"), ("Kinetica", "KN"), ("Soleworks", "SW"), ("Velo", "VL")),
         (("Cloud", "Glide", "Trail", "Road", "Tempo", "Dash", "Stride", "Boost", "Nimbus", "Pace"), _NUMBERS,
          ("", "GTX", "Pro", "Lite", "SE", "Max")),
         ((("Men's", "Mens", "Men"), ("Hombre", "para Hombre")), (("Women's", "Womens", "Women"), ("Mujer", "para Mujer"))), 2, 1.0,
         ("black", "white", "grey", "navy", "red", "blue", "charcoal"), tuple(_shoe_sizes()), 1.0, 3, 6, 0.75, 110.0, True,
         (("Breathable mesh upper", "Cushioned midsole", "Rubber outsole for grip", "Removable insole", "Lightweight and flexible"),
          ("Parte superior de malla transpirable", "Entresuela amortiguada", "Suela de goma"))),
    Kind("towel", 0.07, (("Home > Bath > Towels", "Bath Towels", "Towels"), ("Hogar > Baño > Toallas", "Toallas")),
         (("Towel", "Towels"), ("Toalla", "Toallas")),
         (("Cotton Cove", "CV"), ("Hearth & Home", "HH"), ("Linen Loft", "LL"), ("Seabreeze", "SB"), ("Plush Living", "PLV")),
         (_COLLECTIONS, ("Plush", "Quick Dry", "Luxury", "Hotel", "Waffle", "Ribbed", "Zero Twist", "Spa"),
          ("", "Collection", "Essentials", "Signature")),
         ((("Cotton", "100% Cotton"), ("Algodón",)), (("Turkish Cotton",), ("Algodón Turco",)), (("Bamboo", "Bamboo Viscose"), ("Bambú",))),
         2, 1.2, ("white", "grey", "navy", "beige", "teal", "charcoal", "cream", "pink"), ("washcloth", "hand", "bath", "bath_sheet"),
         1.6, 4, 3, 0.7, 15.0, True,
         (("Highly absorbent", "Quick drying", "Soft and plush", "Double-stitched hems"), ("Muy absorbente", "Secado rápido", "Suave"))),
    Kind("bedding", 0.08, (("Home > Bedding > Sheets", "Sheet Sets", "Bedding"), ("Hogar > Blancos > Sábanas", "Sábanas")),
         (("Sheet Set", "Bed Sheets", "4-Piece Sheet Set"), ("Juego de Sábanas", "Sábanas")),
         (("Hearth & Home", "HH"), ("Linen Loft", "LL"), ("Dreamwell", "DW"), ("Nestwood", "NW"), ("Slumber Co", "SC"), ("Casa Blanca", "CB")),
         (_COLLECTIONS, ("Percale", "Sateen", "Microfiber", "Linen", "Jersey", "Flannel", "Bamboo", "Cotton"),
          ("", "Collection", "Essentials", "Luxe")),
         tuple(((f"{tc} Thread Count", f"{tc}TC", f"{tc} TC"), (f"{tc} Hilos",)) for tc in (300, 400, 600, 800)), 3, 1.3,
         ("white", "grey", "navy", "beige", "cream", "light_blue", "charcoal"), ("twin", "full", "queen", "king", "cal_king"),
         1.15, 3, 4, 0.7, 80.0, False,
         (("Includes flat sheet, fitted sheet and two pillowcases", "Deep pockets fit mattresses up to 16 inches",
           "Breathable and cool", "Machine washable"),
          ("Incluye sábana plana, sábana ajustable y dos fundas", "Transpirable", "Lavable a máquina"))),
    Kind("cookware", 0.08, (("Home > Kitchen > Cookware", "Frying Pans & Skillets", "Cookware"), ("Hogar > Cocina > Sartenes", "Sartenes")),
         (("Frying Pan", "Skillet", "Fry Pan"), ("Sartén", "Sartén para Freír")),
         (("Ironclad", "IC"), ("Hearth & Home", "HH"), ("Chef's Forge", "CF"), ("Copperline", "CL"), ("Terra Kitchen", "TK"), ("Panmaster", "PM")),
         (_COLLECTIONS, ("Pro", "Chef's", "Signature", "Professional", "Tri-Ply", "Titanium", "Ceramic Pro"),
          ("", "Series", "Plus", "Elite")),
         ((("Nonstick", "Non-Stick"), ("Antiadherente",)), (("Ceramic Nonstick", "Ceramic"), ("Cerámica",)),
          (("Hard-Anodized", "Hard Anodized"), ("Anodizado Duro",))), 2, 1.2,
         ("black", "red", "grey", "cream", "blue", "green"), ("pan8", "pan10", "pan12"), 1.25, 3, 3, 0.55, 40.0, True,
         (("PFOA-free coating", "Oven safe to 500°F", "Induction compatible", "Stay-cool handle", "Dishwasher safe"),
          ("Recubrimiento libre de PFOA", "Apta para horno", "Compatible con inducción"))),
)

# Seller title layouts: groups of parts joined by spaces, groups joined by the separator.
# Parts: B brand, L line, Q spec, N noun, C colour, S size, M model number, by "by <brand>".
_LAYOUTS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    (" ", (("B", "L", "Q", "N", "C", "S", "M"),)),
    (", ", (("B", "L", "N"), ("Q",), ("C",), ("S",), ("M",))),
    (" - ", (("B", "L", "Q", "N"), ("C", "S"), ("M",))),
    (" ", (("L", "Q", "N", "C", "S", "M", "by"),)),
    (" | ", (("B", "N", "L", "Q", "M"), ("C",), ("S",))),
    # Spanish sellers put the noun first.
    (" ", (("N", "B", "L", "Q", "C", "S", "M"),)),
    (", ", (("N", "B", "L", "Q"), ("C",), ("S",), ("M",))),
)
_N_ENGLISH_LAYOUTS = 5

_ABBREVIATIONS = {
    "Wireless": "Wrls", "Bluetooth": "BT", "Headphones": "Hdphns", "Noise Cancelling": "NC", "Smartphone": "Smrtphn",
    "Unlocked": "Unlkd", "Television": "TV", "Men's": "Mens", "Women's": "Wmns", "-Inch": '"', "Extra Large": "XL",
    "Medium": "Med", "Cotton": "Ctn", "Black": "Blk", "Pack": "Pk", "Thread Count": "TC", "Generation": "Gen",
    "Long Sleeve": "LS", "Short Sleeve": "SS", "Sheet Set": "Sheets", "Running": "Run", "Months": "Mo",
}


class _Table:
    """Flat string table of per-key English and Spanish spellings, for vectorised picks."""

    def __init__(self, entries: list[Spell]):
        strings: list[str] = []
        self.offset = np.zeros((len(entries), 2), dtype=np.int64)
        self.count = np.zeros((len(entries), 2), dtype=np.int64)
        for k, (en, es) in enumerate(entries):
            for lang, spellings in enumerate((en, es or en)):
                self.offset[k, lang], self.count[k, lang] = len(strings), len(spellings)
                strings.extend(spellings)
        self.strings = pl.Series(strings, dtype=pl.String)

    def pick(self, key: np.ndarray, spanish: np.ndarray, u: np.ndarray, shift: int = 0) -> pl.Series:
        """Return one spelling per row (uniform ``u`` chooses which, ``shift`` steps on cyclically); null where ``key`` < 0."""
        k = np.maximum(key, 0)
        lang = spanish.astype(np.int64)
        count = self.count[k, lang]
        idx = self.offset[k, lang] + ((u * count).astype(np.int64) + shift) % count
        out = self.strings.gather(idx)
        missing = key < 0
        return out.set(pl.Series(missing), None) if missing.any() else out


class _Vocab:
    """Every kind's vocabulary flattened into arrays indexed by kind, so draws stay vectorised."""

    def __init__(self) -> None:
        kinds = KINDS
        self.weights = np.array([k.weight for k in kinds]) / sum(k.weight for k in kinds)
        self.colour_keys = list(COLOURS)
        self.size_keys = list(SIZES)
        self.colours = _Table([spell for _, spell in COLOURS.values()])
        self.colour_codes = pl.Series([code for code, _ in COLOURS.values()])
        self.sizes = _Table(list(SIZES.values()))
        self.nouns = _Table([k.nouns for k in kinds])
        self.categories = _Table([k.category for k in kinds])
        self.features = _Table([k.features for k in kinds])
        self.specs = _Table([s for k in kinds for s in k.specs])
        self.spec_offset = np.cumsum([0] + [len(k.specs) for k in kinds])[:-1]
        self.n_specs = np.array([len(k.specs) for k in kinds])
        self.max_specs = np.array([k.max_specs for k in kinds])
        self.spec_step = np.array([k.spec_price_step for k in kinds])
        # A brand is one id however many kinds it sells, so its model numbers never collide.
        named = dict(b for k in kinds for b in k.brands)
        self.brand_names, self.brand_prefixes = list(named), list(named.values())
        self.kind_brands = np.array([self.brand_names.index(b) for k in kinds for b, _ in k.brands])
        self.brand_offset = np.cumsum([0] + [len(k.brands) for k in kinds])[:-1]
        self.n_brands = np.array([len(k.brands) for k in kinds])
        self.palette = np.array([self.colour_keys.index(c) for k in kinds for c in k.palette])
        self.palette_offset = np.cumsum([0] + [len(k.palette) for k in kinds])[:-1]
        self.palette_len = np.array([len(k.palette) for k in kinds])
        self.size_ladder = np.array([self.size_keys.index(s) for k in kinds for s in k.sizes])
        self.size_offset = np.cumsum([0] + [len(k.sizes) for k in kinds])[:-1]
        self.ladder_len = np.array([len(k.sizes) for k in kinds])
        self.size_step = np.array([k.size_price_step for k in kinds])
        self.max_colours = np.array([k.max_colours for k in kinds])
        self.max_sizes = np.array([max(k.max_sizes, 1) for k in kinds])
        self.p_family = np.array([k.p_family for k in kinds])
        self.median_price = np.array([k.median_price for k in kinds])
        self.colour_in_model = np.array([k.colour_in_model for k in kinds])
        # Line-name parts: part p of kind k is row k of self.parts[p].
        self.parts = [pl.Series([s for k in kinds for s in k.line_parts[p]]) for p in range(3)]
        self.part_offset = [np.cumsum([0] + [len(k.line_parts[p]) for k in kinds])[:-1] for p in range(3)]
        self.part_len = [np.array([len(k.line_parts[p]) for k in kinds]) for p in range(3)]
        self.name_space = self.part_len[0] * self.part_len[1] * self.part_len[2]


_VOCAB = _Vocab()


_ONSETS = ("Alb", "Bram", "Corv", "Dal", "Elm", "Fenn", "Gald", "Harl", "Ivr", "Jasp", "Kel", "Lorn", "Marv",
           "Nesb", "Olv", "Prax", "Quill", "Ross", "Selv", "Tamr", "Ulm", "Verd", "Wyn", "Xend", "Yarr", "Zorb")
_ENDINGS = ("a", "o", "ex", "ix", "on", "ara", "ell", "ica", "ora", "ly", "io", "en", "is", "um", "ar", "ette",
            "wick", "ford", "ton", "ind")
_BRAND_WORDS = ("", " Co", " Labs", " Goods", " Works", " Supply", " & Sons", " Studio")


def _brand(brand_id: int) -> tuple[str, str]:
    """(name, model prefix) of a brand id: the named brands first, then invented ones for big catalogs."""
    v = _VOCAB
    if brand_id < len(v.brand_names):
        return v.brand_names[brand_id], v.brand_prefixes[brand_id]
    j = brand_id - len(v.brand_names)
    onset, ending = _ONSETS[j % len(_ONSETS)], j // len(_ONSETS) % len(_ENDINGS)
    round_ = j // (len(_ONSETS) * len(_ENDINGS))
    name = f"{onset}{_ENDINGS[ending]}{_BRAND_WORDS[round_ % len(_BRAND_WORDS)]}"
    if round_ >= len(_BRAND_WORDS):
        name += f" {round_ // len(_BRAND_WORDS) + 1}"
    # Onset and ending letters make the prefix unique, as the name is.
    return name, f"{onset[0]}{onset[-1].upper()}{chr(ord('A') + ending)}{round_ or ''}"


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (parent index, index within parent) of the children counted per parent."""
    parent = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    return parent, np.arange(parent.size) - starts[parent]


def _padded(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    return prefix + pl.Series(numbers).cast(pl.String).str.zfill(width)


def _opaque(prefix: str, index: np.ndarray, rng: np.random.Generator) -> pl.Series:
    """Zero-padded ids that hide creation order (and so which products are related)."""
    n = int(index.max(initial=0)) + 1
    return _padded(prefix, rng.permutation(n)[index], max(7, len(str(n))))


def _gtin13(index: np.ndarray) -> pl.Series:
    """Unique EAN-13 codes with a valid check digit."""
    base = 400_000_000_000 + (index.astype(np.int64) * 7_919 + 104_729) % 100_000_000_000
    digits = (base[:, None] // 10 ** np.arange(11, -1, -1)) % 10
    check = (10 - (digits[:, 0::2].sum(1) + 3 * digits[:, 1::2].sum(1)) % 10) % 10
    return pl.Series(base * 10 + check).cast(pl.String)


def _structure(rng: np.random.Generator, n_lines: int) -> dict[str, np.ndarray]:
    """Draw lines -> spec families -> colour/size products -> listing counts."""
    v = _VOCAB
    kind = rng.choice(len(KINDS), size=n_lines, p=v.weights)
    n_brands = np.maximum(v.n_brands, np.ceil(n_lines * v.weights / LINES_PER_BRAND).astype(np.int64))
    local = (rng.random(n_lines) * n_brands[kind]).astype(np.int64)
    invented = len(v.brand_names) + (local - v.n_brands[kind]) * len(KINDS) + kind
    brand = np.where(local < v.n_brands[kind], v.kind_brands[v.brand_offset[kind] + np.minimum(local, v.n_brands[kind] - 1)], invented)
    siblings = (rng.random(n_lines) < P_SPEC_SIBLINGS) & (v.max_specs[kind] > 1)
    n_specs = np.where(siblings, 2 + (rng.random(n_lines) * (v.max_specs[kind] - 1)).astype(np.int64), 1)
    spec0 = (rng.random(n_lines) * (v.n_specs[kind] - n_specs + 1)).astype(np.int64)
    line_price = v.median_price[kind] * np.exp(rng.normal(0.0, 0.4, n_lines))

    f_line, f_within = _expand(n_specs)
    fk, nf = kind[f_line], f_line.size
    spec = spec0[f_line] + f_within
    multi = rng.random(nf) < v.p_family[fk]
    nc = 1 + (rng.random(nf) * v.max_colours[fk]).astype(np.int64)
    ns = 1 + (rng.random(nf) * v.max_sizes[fk]).astype(np.int64)
    single = nc * ns == 1
    grow_size = single & (v.max_sizes[fk] > 1) & ((rng.random(nf) < 0.5) | (v.max_colours[fk] == 1))
    ns = np.where(grow_size, 2, ns)
    nc = np.where(single & ~grow_size, 2, nc)
    nc, ns = np.where(multi, nc, 1), np.where(multi, ns, 1)
    ns = np.minimum(ns, np.maximum(8 // nc, 1))
    pal = v.palette_len[fk]
    c0 = (rng.random(nf) * pal).astype(np.int64)
    step = 1 + (rng.random(nf) * (pal - 1)).astype(np.int64)
    step = np.where(np.gcd(step, pal) == 1, step, 1)  # coprime step: distinct colours in a family
    s0 = (rng.random(nf) * (np.maximum(v.ladder_len[fk], 1) - ns + 1)).astype(np.int64)

    p_fam, p_within = _expand(nc * ns)
    # Not every colour comes in every size: drop some grid cells, never a family's first.
    kept = (p_within == 0) | (rng.random(p_fam.size) >= P_MISSING_VARIANT)
    p_fam, p_within = p_fam[kept], p_within[kept]
    pk = fk[p_fam]
    ci = (c0[p_fam] + (p_within // ns[p_fam]) * step[p_fam]) % pal[p_fam]
    si = s0[p_fam] + p_within % ns[p_fam]
    sized = v.ladder_len[pk] > 0
    size = np.where(sized, v.size_ladder[np.minimum(v.size_offset[pk] + si, v.size_ladder.size - 1)], -1)
    price = (line_price[f_line[p_fam]] * v.spec_step[pk] ** spec[p_fam]
             * np.where(sized, v.size_step[pk] ** si, 1.0))
    n_products = p_fam.size
    copies = 1 + (rng.random(n_products) < P_DUPLICATED) * (1 + (rng.random(n_products) < P_THIRD_COPY))
    return {"kind": kind, "brand": brand, "f_line": f_line, "spec": spec, "p_fam": p_fam,
            "colour": v.palette[v.palette_offset[pk] + ci], "size": size, "price": price, "copies": copies}


def _plan(rng: np.random.Generator, n_records: int) -> pl.DataFrame:
    """Draw the truth structure and return one row per listing, in output order."""
    v = _VOCAB
    n_lines = max(4, n_records // 6)
    while True:
        s = _structure(rng, n_lines)
        if s["copies"].sum() >= n_records:
            break
        n_lines *= 2
    # Keep whole products until n_records listings, trimming the last product's copies.
    cum = np.cumsum(s["copies"])
    n_prod = int(np.searchsorted(cum, n_records)) + 1
    copies = s["copies"][:n_prod].copy()
    copies[-1] -= cum[n_prod - 1] - n_records
    p_fam = s["p_fam"][:n_prod]
    f_line = s["f_line"][: p_fam[-1] + 1]
    n_lines = int(f_line[-1]) + 1
    kind, brand = s["kind"][:n_lines], s["brand"][:n_lines]

    brands = [_brand(b) for b in range(int(brand.max()) + 1)]
    lines = pl.DataFrame({"kind": kind, "brand": brand}).with_columns(
        name_rank=pl.int_range(pl.len()).over("kind", "brand"),
        code_rank=pl.int_range(pl.len()).over("brand"),
    )
    # Per brand: a start and a stride through its name space, so a brand's lines are often
    # near-namesakes ("Nova 7", "Nova 7 Pro") - the hard negatives real catalogs are full of.
    n_all_brands = len(brands)
    space = v.name_space[kind]
    start = (rng.random(n_all_brands)[brand] * space).astype(np.int64)
    stride = np.array([1, 1, 1, 7, 11, 13, 17, 19])[(rng.random(n_all_brands) * 8).astype(np.int64)][brand]
    stride = np.where(np.gcd(stride, space) == 1, stride, 1)
    r = (start + lines["name_rank"].to_numpy() * stride) % space
    digit = [r // (v.part_len[1][kind] * v.part_len[2][kind]), (r // v.part_len[2][kind]) % v.part_len[1][kind],
             r % v.part_len[2][kind]]
    name_parts = [v.parts[p].gather(v.part_offset[p][kind] + digit[p] % v.part_len[p][kind]) for p in range(3)]
    line_name = pl.select(pl.concat_str([p.replace("", None) for p in name_parts], separator=" ", ignore_nulls=True)).to_series()
    code_rank = lines["code_rank"].to_numpy()
    code_width = max(4, len(str(int(code_rank.max()))))
    salt = (rng.random(n_all_brands) * 10 ** code_width).astype(np.int64)[brand]
    code = _padded("", (code_rank * 7_919 + salt) % 10 ** code_width, code_width)

    f_spec = s["spec"][: p_fam[-1] + 1]
    fk = kind[f_line]
    family_model = pl.Series([p for _, p in brands]).gather(brand[f_line]).to_frame("prefix").with_columns(
        digits=code.gather(f_line) + pl.Series(f_spec).cast(pl.String))
    pk, colour = fk[p_fam], s["colour"][:n_prod]
    products = pl.DataFrame({
        "product_id": _opaque("P", np.arange(n_prod), rng),
        "family_id": _opaque("F", p_fam, rng),
        "kind": pk, "brand": pl.Series([b for b, _ in brands]).gather(brand[f_line[p_fam]]), "line": line_name.gather(f_line[p_fam]),
        "spec": v.spec_offset[pk] + f_spec[p_fam], "colour": colour, "size": s["size"][:n_prod],
        "model_prefix": family_model["prefix"].gather(p_fam), "model_digits": family_model["digits"].gather(p_fam),
        "model_suffix": v.colour_codes.gather(colour).set(pl.Series(~v.colour_in_model[pk]), None),
        "gtin": _gtin13(np.arange(n_prod)), "price": s["price"][:n_prod],
    })
    listing_product = np.repeat(np.arange(n_prod), copies)
    return products[rng.permutation(listing_product)]


def _join(parts: list[pl.Expr], sep: str) -> pl.Expr:
    """Join the non-missing parts with ``sep``; null when every part is missing."""
    joined = pl.concat_str(parts, separator=sep, ignore_nulls=True)
    return pl.when(joined == "").then(None).otherwise(joined)


def _typo(title: pl.Expr, kind: pl.Expr, at: pl.Expr) -> pl.Expr:
    """One keyboard slip (dropped, swapped or doubled character) at position ``at``."""
    head = title.str.slice(0, at)
    return (pl.when(kind == 0).then(head + title.str.slice(at + 1))
            .when(kind == 1).then(head + title.str.slice(at + 1, 1) + title.str.slice(at, 1) + title.str.slice(at + 2))
            .otherwise(head + title.str.slice(at, 1) + title.str.slice(at)))


def _render(plan: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Write each planned listing the way a random seller would."""
    v = _VOCAB
    n = plan.height
    u = rng.random((34, n))
    kind, colour, size = plan["kind"].to_numpy(), plan["colour"].to_numpy(), plan["size"].to_numpy()
    es_title = u[0] < P_SPANISH_TITLE
    es_attr = np.where(es_title, u[1] < 0.6, u[1] < 0.08)
    es_title_colour = es_title | (u[2] < 0.05)
    # Where colour and size appear: 0 title only, 1 column only, 2 both.
    colour_at = np.searchsorted([0.3, 0.6], u[3], side="right")
    size_at = np.where(size >= 0, np.searchsorted([0.3, 0.6], u[4], side="right"), -1)
    layout = np.where(es_title, _N_ENGLISH_LAYOUTS + (u[5] * (len(_LAYOUTS) - _N_ENGLISH_LAYOUTS)).astype(np.int64),
                      (u[5] * _N_ENGLISH_LAYOUTS).astype(np.int64))
    brand_case = np.searchsorted([0.85, 0.93], u[6], side="right")  # as written, upper, lower
    model_style = (u[7] * 4).astype(np.int64)
    desc_mode = np.where(u[8] < P_NO_DESCRIPTION, -1, np.where(u[9] < P_HTML_DESCRIPTION, 1, 0))
    price = plan["price"].to_numpy() * np.exp(rng.normal(0.0, PRICE_JITTER, n))
    cents = np.array([0.99, 0.95, 0.0, 0.49])[(u[12] * 4).astype(np.int64)]
    price = np.where(u[13] < P_NO_PRICE, np.nan, np.floor(price) + cents)

    frame = pl.DataFrame({
        "layout": layout, "brand_case": brand_case, "model_style": model_style, "desc_mode": desc_mode,
        "brand_in_title": u[14] >= P_BRAND_NOT_IN_TITLE, "brand_in_column": u[15] >= P_BRAND_COLUMN_MISSING,
        "model_in_title": u[16] < P_MODEL_IN_TITLE, "model_in_column": u[17] < P_MODEL_COLUMN,
        "suffix_dropped": u[18] < P_MODEL_SUFFIX_DROPPED, "has_gtin": u[19] < P_GTIN, "gtin14": u[20] < 0.2,
        "abbreviated": u[21] < P_ABBREVIATED, "typo": u[22] < P_TYPO, "typo_kind": (u[23] * 3).astype(np.int64),
        "typo_at": u[24], "case": np.searchsorted([0.92, 0.96], u[25], side="right"),
        "mention": u[26] < 0.4, "no_category": u[27] < 0.1,
        "brand_raw": plan["brand"], "line": plan["line"],
        "spec": v.specs.pick(plan["spec"].to_numpy(), es_title, u[28]),
        "noun": v.nouns.pick(kind, es_title, u[29]),
        "category": v.categories.pick(kind, es_attr, u[30]),
        "colour_title": v.colours.pick(np.where(colour_at != 1, colour, -1), es_title_colour, u[31]),
        "colour_column": v.colours.pick(np.where(colour_at >= 1, colour, -1), es_attr, u[10]),
        "size_title": v.sizes.pick(np.where((size_at == 0) | (size_at == 2), size, -1), es_title, u[11]),
        "size_column": v.sizes.pick(np.where(size_at >= 1, size, -1), es_attr, u[32]),
        "feature1": v.features.pick(kind, es_title, u[33]),
        "feature2": v.features.pick(kind, es_title, u[33], shift=1),
        "es": es_title, "price": price,
        "model_prefix": plan["model_prefix"], "model_digits": plan["model_digits"], "model_suffix": plan["model_suffix"],
        "gtin_raw": plan["gtin"],
    }, nan_to_null=True)

    col = pl.col
    brand = (pl.when(col("brand_case") == 1).then(col("brand_raw").str.to_uppercase())
             .when(col("brand_case") == 2).then(col("brand_raw").str.to_lowercase()).otherwise(col("brand_raw")))
    suffix = pl.when(col("suffix_dropped")).then(None).otherwise(col("model_suffix"))
    model_parts = [col("model_prefix"), col("model_digits"), suffix]
    model = (pl.when(col("model_style") == 0).then(_join(model_parts, "-"))
             .when(col("model_style") == 1).then(_join(model_parts, "").str.to_lowercase())
             .when(col("model_style") == 2).then(_join(model_parts, " "))
             .otherwise(_join(model_parts, "")))
    frame = frame.with_columns(brand=brand, model=model)
    part = {"B": pl.when(col("brand_in_title")).then(col("brand")), "L": col("line"), "Q": col("spec"), "N": col("noun"),
            "C": col("colour_title"), "S": col("size_title"), "M": pl.when(col("model_in_title")).then(col("model"))}
    part["by"] = pl.lit("by ") + part["B"]
    title = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    for i, (sep, groups) in enumerate(_LAYOUTS):
        title = title.when(col("layout") == i).then(_join([_join([part[p] for p in g], " ") for g in groups], sep))
    frame = frame.with_columns(title=title.otherwise(None))
    title = col("title")
    title = pl.when(col("abbreviated")).then(title.str.replace_many(_ABBREVIATIONS)).otherwise(title)
    length = title.str.len_chars()
    at = (col("typo_at") * (length - 3)).floor().cast(pl.Int64) + 1
    title = pl.when(col("typo") & (length > 4)).then(_typo(title, col("typo_kind"), at)).otherwise(title)
    title = (pl.when(col("case") == 1).then(title.str.to_uppercase())
             .when(col("case") == 2).then(title.str.to_lowercase()).otherwise(title))

    lead = _join([col("brand"), col("line"), col("spec"), col("noun")], " ")
    mention = _join([
        pl.when(col("mention")).then(pl.lit("Color: ") + col("colour_column")),
        pl.when(col("mention")).then(pl.when(col("es")).then(pl.lit("Talla: ")).otherwise(pl.lit("Size: ")) + col("size_column")),
    ], ". ")
    plain = _join([lead, col("feature1"), col("feature2"), mention], ". ") + pl.lit(".")
    html = _join([pl.lit("<p>") + lead + pl.lit(".</p><ul><li>") + col("feature1") + pl.lit("</li><li>")
                  + col("feature2") + pl.lit("</li></ul>"), mention], " ")
    description = pl.when(col("desc_mode") == 0).then(plain).when(col("desc_mode") == 1).then(html)
    gtin = pl.when(col("gtin14")).then(pl.lit("0") + col("gtin_raw")).otherwise(col("gtin_raw"))
    return frame.select(
        title=title,
        brand=pl.when(col("brand_in_column")).then(col("brand")),
        description=description,
        price=col("price"),
        category=pl.when(~col("no_category")).then(col("category")),
        color=col("colour_column"),
        size=col("size_column"),
        model_number=pl.when(col("model_in_column")).then(col("model")),
        gtin=pl.when(col("has_gtin")).then(gtin),
    )


def catalog_plan(n_records: int, seed: int) -> pl.DataFrame:
    """Return the truth behind ``generate_catalog(n_records, seed)``, row-aligned: canonical keys per listing."""
    v = _VOCAB
    plan = _plan(np.random.default_rng(seed), n_records)
    return plan.select(
        "product_id", "family_id",
        kind=pl.col("kind").replace_strict(list(range(len(KINDS))), [k.name for k in KINDS]),
        brand="brand",
        line="line",
        spec=pl.col("spec").replace_strict(list(range(v.specs.offset.shape[0])), [v.specs.strings[int(o)] for o in v.specs.offset[:, 0]]),
        color=pl.col("colour").replace_strict(list(range(len(v.colour_keys))), v.colour_keys),
        size=pl.col("size").replace_strict(list(range(len(v.size_keys))), v.size_keys, default=None),
        model=pl.concat_str("model_prefix", "model_digits", separator="-"),
    )


def generate_catalog(n_records: int, seed: int, progress: bool = False) -> pl.DataFrame:
    """Generate ``n_records`` synthetic listings with truth columns ``product_id`` and ``family_id``."""
    if n_records < 1:
        raise ValueError("n_records must be at least 1")
    rng = np.random.default_rng(seed)
    plan = _plan(rng, n_records)
    starts = track(range(0, n_records, CHUNK), description="rendering listings", disable=not progress, transient=True)
    chunks = [_render(plan.slice(start, CHUNK), rng) for start in starts]
    listings = pl.concat(chunks)
    width = max(7, len(str(n_records)))
    ids = _padded("L", np.arange(1, n_records + 1), width)
    return listings.with_columns(id=ids, product_id=plan["product_id"], family_id=plan["family_id"]).select(OUTPUT_COLUMNS)
