"""The JSON-lines protocol between the Blender add-on and `python -m engine serve` (docs/protocol.md)."""
