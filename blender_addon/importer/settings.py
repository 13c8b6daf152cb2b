"""The eight import settings, declared once: a mixin of the per-scene settings (properties.ParallaxSettings,
shown in the Reconstruct panel) and of File > Import > Parallax Bundle (operator.py), as glTF-Blender-IO's
ConvertGLTF2_Base shares its options; `bundle_import.options_from_settings` reads either."""

from bpy.props import BoolProperty, EnumProperty, FloatProperty


class ImportSettings:
    import_camera: BoolProperty(name="Camera", default=True)
    import_points: BoolProperty(name="Points", default=True)
    import_depth: BoolProperty(name="Depth", default=True)
    floor_fit: BoolProperty(name="Level on Floor", default=False,
                            description="Fit the dominant ground plane and make it Z = 0")
    accumulate: BoolProperty(name="Accumulate Points", default=False,
                             description="Also show the points of earlier frames")
    confidence_threshold: FloatProperty(
        name="Confidence Threshold", min=0.0, default=0.0,
        description="Hide points below this confidence (changeable after import on the points' modifier)")
    point_radius: FloatProperty(name="Point Radius", min=0.0, default=0.0, subtype="DISTANCE",
                                description="0 picks one from the point spacing")
    rotation_mode: EnumProperty(
        name="Rotation", default="XYZ", description="How the camera's rotation is keyed",
        items=[("XYZ", "Euler XYZ", "Euler angles, XYZ order (continuous through full turns)"),
               ("QUATERNION", "Quaternion", "Quaternions (sign-continuous)")])
