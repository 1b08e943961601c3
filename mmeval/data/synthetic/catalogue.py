"""What the synthetic benchmark shows and asks about: products, their variants, their defects, and the words.

Every text here is written so that no question can be answered without looking:

* each product comes in four variants that differ in what the Object Analysis questions ask about
  (colour, pattern, shape, which part sits where); every variant is equally common, and the options of
  a question are the answers it has on the four variants, so each option is right equally often;
* each product has four plausible defects; a defective image's Classification, Description and Analysis
  questions offer the texts of the product's own defects, each of which is right equally often;
* the questions never name the product.
"""

from __future__ import annotations

from dataclasses import dataclass

N_VARIANTS = 4


@dataclass(frozen=True)
class DefectKind:
    key: str  # folder name under test/ and ground_truth/
    label: str  # Defect Classification option
    title: str  # heading in domain_knowledge.json
    appearance: str  # Defect Description option
    effect: str  # Defect Analysis option
    knowledge: str  # domain-knowledge paragraph; {p} is the product's name


DEFECTS: dict[str, DefectKind] = {d.key: d for d in (
    DefectKind(
        "scratch", "Scratch.", "Surface Scratch",
        "A thin, straight or gently curved line, lighter or darker than the surface around it.",
        "It spoils the finish and can become a starting point for wear or corrosion.",
        "A scratch on the {p} is a narrow line, one or two pixels wide and several times longer than it is "
        "wide, in a lighter or darker shade of the surface. It runs straight or bends slightly and ignores "
        "the regular structure of the {p}."),
    DefectKind(
        "hole", "Hole.", "Hole",
        "A small, dark, roughly round opening where material is missing.",
        "The material is pierced, so it no longer covers or seals what lies behind it.",
        "A hole in the {p} is a compact patch with an irregular, roughly circular outline, in a deep shade of "
        "the material's own colour. Inside it the usual pattern of the {p} disappears."),
    DefectKind(
        "stain", "Stain.", "Discoloured Stain",
        "A soft-edged patch, a shade darker or lighter than the rest.",
        "It is mostly cosmetic and lowers the visual grade of the product.",
        "A stain on the {p} is a blurred, rounded area noticeably darker or lighter than the surrounding "
        "material. The pattern underneath stays visible and the edge fades out gradually."),
    DefectKind(
        "crack", "Crack.", "Crack",
        "A dark, jagged line that zigzags across the surface.",
        "It weakens the part, which may split completely under load.",
        "A crack in the {p} is a dark, thin line that changes direction in short irregular steps, unlike the "
        "smooth line of a scratch. It marks a real fracture of the material."),
    DefectKind(
        "cut", "Cut.", "Cut Fibres",
        "A short, straight, dark slit with a frayed light rim.",
        "The severed fibres can unravel, so the damage grows with use.",
        "A cut in the {p} is a short, straight, dark slit where the fibres are severed; the cut ends of the "
        "fibres form a lighter rim along it."),
    DefectKind(
        "thread", "Loose thread.", "Stray Thread",
        "A curving strand of yarn lying on top of the surface.",
        "It can snag and be pulled, distorting the weave around it.",
        "A loose thread on the {p} is a thin strand, a shade lighter or darker than the pile, that curves "
        "across the weave at an arbitrary angle and lies on top of it."),
    DefectKind(
        "chip", "Chipped edge.", "Chipped Edge",
        "A small piece broken away from an edge, exposing what lies beneath.",
        "The sharp break exposes the body to moisture and dirt and can injure handlers.",
        "A chip on the {p} is a small bite missing from an edge. The outline of the {p} is interrupted there "
        "and what lies beneath (the background, or the pale body of the material) shows through."),
    DefectKind(
        "notch", "Notch.", "Notch in the Rim",
        "A small bite missing from the rim.",
        "The bearing face is incomplete, so the clamping load is spread unevenly.",
        "A notch in the {p} is a small piece missing from the inner or outer rim. The outline shows a dent "
        "there, and the background can be seen through the gap."),
    DefectKind(
        "contamination", "Contamination.", "Foreign Particles",
        "A cluster of small specks or fibres stuck onto the surface.",
        "The foreign matter can interfere with assembly and has to be cleaned off.",
        "Contamination on the {p} appears as several small specks or short fibres grouped closely together, "
        "dark or light. A single isolated speck is normal; a cluster is not."),
    DefectKind(
        "missing_component", "Missing component.", "Missing Component",
        "Bare silver solder pads where a part should be mounted.",
        "The circuit is incomplete, so the board will not work as designed.",
        "A missing component on the {p} leaves its solder pads empty: the silver pads are visible where a "
        "chip, capacitor, resistor or connector should sit."),
    DefectKind(
        "extra_component", "Extra component.", "Extra Component",
        "An additional small part sitting on a spot that should be empty.",
        "It can create an unintended connection or a short circuit.",
        "An extra component on the {p} is a small part that does not belong to the layout, placed on bare "
        "board next to the regular parts."),
    DefectKind(
        "misplaced_component", "Misplaced component.", "Misplaced Component",
        "A part that is shifted or turned away from its pads.",
        "Its pins may not touch the pads, causing an open or intermittent connection.",
        "A misplaced component on the {p} is present but displaced or rotated relative to its solder pads, "
        "so part of the pads is uncovered and the part sits at an angle."),
)}


@dataclass(frozen=True)
class Attribute:
    """One Object Analysis question: its type label, wording and the answer on each variant."""

    type: str  # "Object Structure" or "Object Details"
    question: str  # may hold {region} (filled per image)
    answers: tuple[str, str, str, str]  # indexed by variant


COLOUR_QUESTION = "What colour is the object in the image?"


@dataclass(frozen=True)
class Product:
    dataset: str
    name: str  # folder name
    label: str  # Object Classification option
    noun: str  # how the knowledge refers to it
    defects: tuple[str, str, str, str]
    structure: Attribute
    colour: Attribute
    normal_knowledge: str


PRODUCTS: tuple[Product, ...] = (
    Product(
        "SynthTexture", "carpet", "Carpet.", "carpet", ("hole", "stain", "cut", "thread"),
        Attribute("Object Structure", "What kind of weave does the surface have?",
                  ("A fine criss-cross weave.", "Diagonal twill lines.", "Horizontal ribs.", "Vertical ribs.")),
        Attribute("Object Details", COLOUR_QUESTION, ("Red.", "Blue.", "Green.", "Beige.")),
        "A normal carpet sample is a woven textile filling the whole image. It is made in four styles: red "
        "with a fine criss-cross weave, blue with diagonal twill lines, green with horizontal ribs and beige "
        "with vertical ribs. The weave may be turned by a few degrees, the brightness varies softly with the "
        "lighting and the pile, and an isolated speck of lint is normal. There are no holes, slits, stray "
        "threads or discoloured patches."),
    Product(
        "SynthTexture", "wood", "Wood.", "wood", ("scratch", "hole", "crack", "stain"),
        Attribute("Object Structure", "Which way do the grain lines run?",
                  ("From top to bottom.", "From left to right.", "From the top left to the bottom right.",
                   "From the bottom left to the top right.")),
        Attribute("Object Details", COLOUR_QUESTION,
                  ("Pale blond.", "Reddish brown.", "Dark brown.", "Weathered grey.")),
        "A normal wood sample shows planed timber with darker, wavy, nearly parallel grain lines. It comes in "
        "four cuts: pale blond with vertical grain, reddish brown with horizontal grain, dark brown with grain "
        "falling to the right and weathered grey with grain rising to the right. The spacing of the lines "
        "varies a little and the board may be slightly tilted; an isolated speck is normal. There are no "
        "dark openings, cracks, marks or discoloured patches."),
    Product(
        "SynthTexture", "tile", "Tile.", "tile", ("crack", "stain", "chip", "scratch"),
        Attribute("Object Structure", "How is the surface divided up?",
                  ("Square pieces in a straight grid.", "Rectangles in a staggered brick bond.",
                   "Squares turned on their corners.", "Long narrow strips in a straight grid.")),
        Attribute("Object Details", COLOUR_QUESTION, ("Muted blue.", "Sage green.", "Terracotta.", "Mustard yellow.")),
        "A normal tiled surface is a pattern of glazed tiles separated by straight, light grey grout joints, "
        "laid in one of four ways: muted blue squares in a straight grid, sage green rectangles in a brick "
        "bond, terracotta squares turned on their corners, or mustard yellow strips. Each tile has a slightly "
        "different shade and a fine mottled glaze; the pattern can be shifted and turned by a degree or two. "
        "Tile edges are straight and intact."),
    Product(
        "SynthObject", "washer", "Washer.", "washer", ("scratch", "notch", "contamination", "crack"),
        Attribute("Object Structure", "What shape is the opening in the middle?",
                  ("Round.", "Square.", "Hexagonal.", "Triangular.")),
        Attribute("Object Details", COLOUR_QUESTION, ("Silver.", "Brass yellow.", "Copper red.", "Dark grey.")),
        "A normal washer is a flat metal ring lying near the centre of a dark background. Four kinds are made: "
        "silver with a round opening, brass with a square one, copper with a hexagonal one and dark grey with "
        "a triangular one. Its outer rim is a smooth circle; the metal shows a soft highlight on the side "
        "facing the light and faint concentric machining rings. Position, turn and lighting vary slightly "
        "and an isolated speck is normal."),
    Product(
        "SynthObject", "nut", "Nut.", "nut", ("scratch", "chip", "contamination", "crack"),
        Attribute("Object Structure", "How many corners does the outline of the object have?",
                  ("Four.", "Five.", "Six.", "Eight.")),
        Attribute("Object Details", COLOUR_QUESTION, ("Grey.", "Golden yellow.", "Blue-black.", "Bronze brown.")),
        "A normal nut is a flat polygonal steel part seen from above on a dark background, with a round "
        "threaded hole in the middle. Four kinds are made: grey square nuts, golden yellow five-sided nuts, "
        "blue-black hexagon nuts and bronze brown eight-sided nuts. The edges carry a narrow chamfer shaded by "
        "the light; the nut can be turned and moved slightly and an isolated speck is normal. The corners "
        "and the bore are intact and the faces are clean."),
    Product(
        "SynthObject", "pcb", "Printed circuit board.", "circuit board",
        ("missing_component", "extra_component", "misplaced_component", "scratch"),
        Attribute("Object Structure", "What sits in the {region} part of the image?",
                  ("A black chip.", "A round capacitor.", "A small brown resistor.", "A white connector.")),
        Attribute("Object Details", COLOUR_QUESTION, ("Green.", "Blue.", "Red.", "Purple.")),
        "A normal circuit board fills the image, with one component in each ninth of it, each on its silver "
        "solder pads and joined by lighter traces. Four layouts are made, one per board colour (green, blue, "
        "red, purple); each places black chips, round capacitors, small brown resistors and white connectors "
        "in its own arrangement. Only a small shift, rotation and lighting change between boards of one "
        "layout."),
)
