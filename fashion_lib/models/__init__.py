"""Key-point detectors (Keypoint R-CNN, CPN) and their shared inference interface; attribute networks.

Import from the submodules: :mod:`fashion_lib.models.keypoint_rcnn`, :mod:`fashion_lib.models.cpn`,
:mod:`fashion_lib.models.detector` (and ``fashion_lib.models.attributes``).
"""
