"""The add-on's preferences wrap their long texts to the Preferences editor's width (blender_addon/wrapping.py,
PREFERENCES_MARGIN): the engine environment's problem and fix, the pip builder's last error lines, the shared
folder's path and the weights' state, message and licences, drawn by the real preferences of the installed
extension in headless Blender. Headless Blender draws no UI, so the layout is a recorder of the labels, set as
Blender's Preferences editor sets it (the preferences class's `layout`), and the region is one of a given width."""

import pytest

from tests.addon_session import INSTALL, run_bpy

LONG_DIR = "/home/artist/.local/share/parallax/environments/python-3.11-blender-shared/envs/engine-a1b2c3d4e5f6"
PROBLEM = f"the engine environment in {LONG_DIR} is broken: its Python does not run (exit status 127)"
FIX = "press Create Engine Environment to make it again, or choose an existing Python with the engine's packages"
BUILDER = ("installing packages failed:\nold line that is not shown\n"
           "ERROR: Could not find a version that satisfies the requirement torch==2.13.0 (from versions: none)\n"
           "ERROR: No matching distribution found for torch==2.13.0 from https://download.pytorch.org/whl/cu128\n"
           f"see {LONG_DIR}/pip-install.log for the whole output of pip\nthe environment may be incomplete")
WEIGHTS_PROBLEM = (f"the Geo4D weights in {LONG_DIR}/models/geo4d/unet_diffusion_model.safetensors do not match "
                   "their manifest (size 6442450944 bytes, expected 6442450945)")
MESSAGE = "Downloading and converting Geo4D failed: the server answered 503 Service Unavailable — try again later"

# After INSTALL: the environment and weights states above, then the real preferences drawn into a recorder in a
# region argv[2] pixels wide; reports each label (text, icon, boxed, its width in Blender's UI font, the width
# wrapping allows it in the Preferences) and the texts the preferences had to show.
DRAW = INSTALL + f"""
from pathlib import Path
from types import SimpleNamespace
preferences = importlib.import_module(MOD + ".preferences")
weights = importlib.import_module(MOD + ".weights")
engine_env = importlib.import_module(MOD + ".engine_env")
wrapping = importlib.import_module(MOD + ".wrapping")
prefs.python_source = "ENV"
os.environ["PARALLAX_DATA_DIR"] = {LONG_DIR!r}
preferences._status = engine_env.EnvStatus("broken", Path({LONG_DIR!r}), {PROBLEM!r}, {FIX!r})
builder = engine_env.EnvBuilder(sys.executable, Path({LONG_DIR!r}), [])
builder.state, builder.message = "failed", {BUILDER!r}
preferences._builder = builder
weights._states["geo4d"] = {{"state": "broken", "model_dir": "", "problem": {WEIGHTS_PROBLEM!r}, "fix": {FIX!r}}}
weights._messages["geo4d"] = {MESSAGE!r}

class Recorder:
    def __init__(self, labels, boxed=False):
        self.labels, self.boxed = labels, boxed
    def label(self, text="", icon="NONE"):
        self.labels.append((text, icon, self.boxed))
    def box(self):
        return Recorder(self.labels, True)
    def column(self, **_):
        return Recorder(self.labels, self.boxed)
    row = column
    def operator(self, *_, **__):
        return SimpleNamespace()
    def prop(self, *_, **__):
        pass
    progress = separator = prop

labels = []
type(prefs).layout = Recorder(labels)
context = SimpleNamespace(preferences=bpy.context.preferences, region=SimpleNamespace(width=int(sys.argv[2])))
prefs.draw(context)
measure, scale = wrapping.ui_measure(context)
result["labels"] = [[text, icon, boxed, measure(text),
                     wrapping.text_width(context.region.width, scale, icon != "NONE", boxed,
                                         wrapping.PREFERENCES_MARGIN)] for text, icon, boxed in labels]
result["licences"] = importlib.import_module(MOD + ".engine_link").model_package("geo4d").LICENCES
report()
"""


def _chars(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("width", [420, 700])
def test_each_long_text_is_wrapped_to_the_preferences_width_and_shown_whole_in_order(addon_zip, tmp_path, width):
    labels = run_bpy(DRAW, [addon_zip, width], tmp_path / "profile")["labels"]
    assert all(measured <= allowed for _, _, _, measured, allowed in labels), [
        (text, measured, allowed) for text, _, _, measured, allowed in labels if measured > allowed]
    shown = _chars("".join(text for text, *_ in labels))
    builder_tail = "\n".join(BUILDER.splitlines()[-4:])
    texts = [PROBLEM, f"Fix: {FIX}", builder_tail, f"One environment for every Blender version, kept in {LONG_DIR}",
             WEIGHTS_PROBLEM, MESSAGE]
    for text in texts:
        assert _chars(text) in shown, text
    positions = [shown.index(_chars(text)) for text in texts]
    assert positions == sorted(positions)  # in the order the preferences draw them
    assert "oldlinethatisnotshown" not in shown  # the builder's last four lines only
    # Wrapped, not just short: the long path's text takes several labels at these widths.
    assert sum(LONG_DIR[:20] in text for text, *_ in labels) >= 1
    assert len([text for text, *_ in labels if text]) > len(texts) + 5


def test_the_licences_are_shown_whole_item_by_item(addon_zip, tmp_path):
    result = run_bpy(DRAW, [addon_zip, 420], tmp_path / "profile")
    assert all(measured <= allowed for _, _, _, measured, allowed in result["labels"])
    shown = _chars("".join(text for text, *_ in result["labels"]))
    assert _chars(result["licences"]) in shown
    # Each item starts a line of its own, as in the engine's text.
    items = [line.strip() for line in result["licences"].splitlines() if line.strip().startswith("- ")]
    starts = [text for text, *_ in result["labels"]]
    assert len(items) >= 3 and all(any(text.startswith(item[:12]) for text in starts) for item in items)
