"""Free text in the panels and the add-on's preferences wrapped to the region's width: Blender cuts a label too
long for it ("Reconstructed into '...arallax/bundles/clip)"), so messages, log lines, paths and errors are split
into lines that fit.
`wrap_lines` is pure (any measure of a string's width); `draw_text` measures with Blender's UI font."""

from __future__ import annotations

from typing import Callable

# What a label's text loses of the region's width at UI scale 1, in pixels: in Blender 4.3's sidebar (291 px wide
# by default: scripts/panel_picture.sh) the tab column, the panel's borders and the layout's margins; an icon and
# a box's border take more.
SIDEBAR_MARGIN = 56
# In the Preferences editor, the add-on's expanded entry: its box and the box Blender draws the preferences in
# (Blender 4.3 under Xvfb, region 1156 px at scale 1.0417: a label of text 1118 px wide fits, 1119 is cut; 38 px).
PREFERENCES_MARGIN = 37
# An icon's column (the Preferences, as above: with an icon 1092 px fit, 1093 were cut; 26 px more).
ICON_WIDTH = 25
# A box's border (the sidebar; in the Preferences a box took 9 px at scale 1.0417, less).
BOX_MARGIN = 12
FONT_ID = 0  # the UI's font
# Where a long word (a path) may break: after a folder separator, else anywhere.
BREAK_AFTER = "/\\"


def wrap_lines(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """`text` as lines no wider than `width` (as `measure` gives a string's width, in the same unit), broken at
    spaces and at its own line breaks. A word wider than a line (a path) is broken after a folder separator where
    one fits, else between characters, so every character stays, in order, and a path's end (its file or folder)
    is shown, not cut. Only a `width` below one character's gets lines wider than it (one character each)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            joined = f"{line} {word}" if line else word
            if measure(joined) <= width:
                line = joined
                continue
            if line:
                lines.append(line)
            while measure(word) > width and len(word) > 1:
                head = _longest_head(word, width, measure)
                lines.append(head)
                word = word[len(head):]
            line = word
        lines.append(line)
    return lines


def _longest_head(word: str, width: float, measure: Callable[[str], float]) -> str:
    """The longest start of `word` that fits `width` (at least one character), ending after a folder separator
    when one is in its second half (a line of a lone '/' would waste a row)."""
    n = 1
    while n < len(word) and measure(word[:n + 1]) <= width:
        n += 1
    cut = max(word.rfind(sep, 0, n) for sep in BREAK_AFTER) + 1
    return word[:cut] if cut > n // 2 else word[:n]


def text_width(region_width: int, scale: float, icon: bool, boxed: bool, margin: float = SIDEBAR_MARGIN) -> float:
    """The pixels a label's text has in a region `region_width` pixels wide at UI scale `scale` (margin: what the
    region's own borders take at scale 1, SIDEBAR_MARGIN or PREFERENCES_MARGIN)."""
    return region_width - scale * (margin + (ICON_WIDTH if icon else 0) + (BOX_MARGIN if boxed else 0))


def ui_measure(context) -> tuple[Callable[[str], float], float]:
    """(a string's width in pixels in the UI's font, the UI scale) for the window `context` draws in."""
    import blf  # here, not above: wrap_lines is tested in Pythons without Blender

    scale = context.preferences.system.ui_scale or 1.0  # 0 without a window (headless Blender)
    blf.size(FONT_ID, context.preferences.ui_styles[0].widget.points * scale)
    return (lambda text: blf.dimensions(FONT_ID, text)[0]), scale


def draw_text(layout, context, text: str, icon: str = "NONE", boxed: bool = False,
              margin: float = SIDEBAR_MARGIN) -> None:
    """`text` as labels wrapped to the region's width; the first line carries `icon`, the others are indented
    under it. boxed: `layout` is a box (its border takes width); margin: as text_width's."""
    measure, scale = ui_measure(context)
    width = text_width(context.region.width, scale, icon != "NONE", boxed, margin)
    column = layout.column(align=True)
    for i, line in enumerate(wrap_lines(text, width, measure)):
        column.label(text=line, icon=icon if i == 0 else ("BLANK1" if icon != "NONE" else "NONE"))
