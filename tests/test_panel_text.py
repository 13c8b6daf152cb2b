"""Free text in the panels wrapped to the sidebar's width (blender_addon/wrapping.py): no line wider than the
width, every character kept in order, words whole where they fit, paths broken after a folder so their end shows;
with Blender's own font measure (headless bpy) as with a character count."""

import pytest

from blender_addon.wrapping import wrap_lines

MESSAGES = [
    "Reconstructed into 'clip' (/home/artist/projects/show/sh010/parallax/clip)",
    "solve error 101.58 px average in plate pixels (poor), worst 187.20 px at frame 9 of the clip (counting from "
    "1); check frames 9-12, 40 of the clip",
    "Reconstruction failed: the clip file /mnt/plates/sh010_plate_v003.mov does not exist — relink the clip in the "
    "Movie Clip Editor",
    "hid Cube: the camera passes inside (shown again from the Outliner, it stays shown on re-imports)",
    "one\nparagraph per line\n\nand an empty one",
    "",
]


def _kept(text: str, lines: list[str]) -> bool:
    """Every non-space character of `text`, in order, and no other."""
    return "".join(text.split()) == "".join("".join(lines).split())


@pytest.mark.parametrize("text", MESSAGES)
def test_no_line_is_wider_than_the_width_and_nothing_is_lost(text):
    longest_word = max((len(word) for word in text.split()), default=0)
    for width in range(1, 90):
        lines = wrap_lines(text, width, len)
        assert all(len(line) <= width for line in lines), (width, lines)
        assert _kept(text, lines), (width, lines)
        words = {word for line in lines for word in line.split()}
        assert all(word in words for word in text.split() if len(word) <= width), (width, lines)
        assert len(lines) >= text.count("\n") + 1  # the text's own line breaks stay
    assert wrap_lines(text, longest_word + 1000, len) == (text.splitlines() or [""])  # wide enough: as it is


def test_a_path_breaks_after_its_folders_and_its_end_shows():
    text = "Reconstructed into 'clip' (/home/artist/projects/show/sh010/parallax/clip)"
    lines = wrap_lines(text, 24, len)
    assert lines == ["Reconstructed into", "'clip'", "(/home/artist/projects/", "show/sh010/parallax/", "clip)"]


def test_a_word_without_separators_breaks_between_characters():
    assert wrap_lines("a_long_name_without_any_breaks", 10, len) == ["a_long_nam", "e_without_", "any_breaks"]


def test_blenders_font_measure_keeps_each_line_inside_the_width():
    """The measure the panel uses: Blender's UI font (proportional), at 11 points as at UI scale 1."""
    pytest.importorskip("bpy")
    import blf

    blf.size(0, 11)

    def measure(text):
        return blf.dimensions(0, text)[0]

    for text in [*MESSAGES, "WWW " * 30, "iii " * 30]:
        for width in (80, 150, 213, 400):
            lines = wrap_lines(text, width, measure)
            assert all(measure(line) <= width for line in lines) and _kept(text, lines), (width, lines)
    # Narrow letters fill a line with more of them than wide ones: the font's widths count, not characters.
    assert len(wrap_lines("iii " * 30, 150, measure)) < len(wrap_lines("WWW " * 30, 150, measure))
