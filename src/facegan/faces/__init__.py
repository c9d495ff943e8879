"""Face analysis: detection, landmarks, crop templates, alignment and paste-back.

Backends sit behind small interfaces (``Detector``, ``LandmarkModel``) so they can be swapped.
This package never imports ``ops``, ``judges`` or ``nets``.
"""
from .types import Face
from .templates import CropTemplate, get_template, list_templates
from .align import AlignedFace, align_face, paste_back

__all__ = ["Face", "CropTemplate", "get_template", "list_templates", "AlignedFace", "align_face",
           "paste_back"]
