"""A procedural apparel and people world, written in the real on-disk formats.

No real data set can be downloaded for this study, so it runs on synthetic data shaped like the real thing
(paper, section IV.A uses FashionAI, DeepFashion and COCO-2017). Every garment is a parametric shape drawn from
FashionAI's 24-point schema (:data:`fashion_lib.keypoints.FASHIONAI`); every attribute is a continuous latent that
decides both the drawing and the label, and a latent close to a class boundary gives the neighbouring class an
``m`` ("maybe") label, so the paper's "maybe" loss has something real to learn from.

Ground truth the real data lacks is returned too: the true symmetry axis of each instance (the line
``{p : normal . p = offset}``, the refiner's representation) and which points an occluder hid.

Modules: :mod:`~fashion_lib.synthetic.world` (knobs, randomness, attribute latents), ``canvas`` (backgrounds,
fabrics, occluders), :mod:`~fashion_lib.synthetic.garments` (FashionAI garments),
:mod:`~fashion_lib.synthetic.people` (COCO persons), :mod:`~fashion_lib.synthetic.deepfashion` (DeepFashion
categories and attributes on the garment renderer), :mod:`~fashion_lib.synthetic.datasets` (on-the-fly ``torch``
data sets), :mod:`~fashion_lib.synthetic.writers` (the four real layouts) and
:mod:`~fashion_lib.synthetic.knobs` (measuring what the knobs do).

Conventions
-----------
- Pixel coordinates are continuous: the centre of pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``; ``x`` right, ``y`` down.
- Visibility is COCO's across the library: ``0`` absent (coordinates 0), ``1`` occluded, ``2`` visible.
- FashionAI's ``*_left`` points lie at the smaller ``x`` (as in the real rows); COCO's ``left_*`` points are the
  person's left, at the larger ``x`` for a person facing the camera (as in the real annotations).
- Randomness comes only from the ``torch.Generator`` passed in; item ``i`` of a data set is generated from a
  generator seeded by ``(seed, split, i)``, so items are deterministic and independent of worker order.

Attribute tasks per category (FashionAI labels one task per image; here each garment carries every task that
applies to its category, and the attribute writer writes one row per image for one of them):

=========  ==================================================================================
blouse     sleeve_length_labels, neckline_design_labels, collar_design_labels
outwear    sleeve_length_labels, coat_length_labels, lapel_design_labels, neck_design_labels
dress      sleeve_length_labels, neckline_design_labels, skirt_length_labels
skirt      skirt_length_labels
trousers   pant_length_labels
=========  ==================================================================================

The ``Invisible`` class (index 0 of every task) is never generated: every drawn attribute is visible.
"""

from __future__ import annotations

from fashion_lib.synthetic.datasets import SyntheticDeepFashion, SyntheticGarments, SyntheticPeople
from fashion_lib.synthetic.deepfashion import (
    DEEPFASHION_ATTRIBUTES,
    DEEPFASHION_CATEGORIES,
    DEEPFASHION_LANDMARKS,
    render_deepfashion,
)
from fashion_lib.synthetic.garments import render_garment
from fashion_lib.synthetic.knobs import (
    REAL_FASHIONAI_FACTS,
    garment_facts,
    label_rates,
    mirror_errors,
    occluded_fraction,
    occluded_shares,
    pair_axis_offsets,
)
from fashion_lib.synthetic.people import render_people
from fashion_lib.synthetic.world import CATEGORIES, CATEGORY_TASKS, TASK_CATEGORIES, WorldConfig, item_generator
from fashion_lib.synthetic.writers import (
    FASHIONAI_HEADER,
    write_coco_people,
    write_deepfashion,
    write_fashionai_attributes,
    write_fashionai_keypoints,
)

__all__ = [
    "WorldConfig",
    "CATEGORIES",
    "CATEGORY_TASKS",
    "TASK_CATEGORIES",
    "render_garment",
    "render_people",
    "render_deepfashion",
    "SyntheticGarments",
    "SyntheticPeople",
    "SyntheticDeepFashion",
    "item_generator",
    "write_fashionai_keypoints",
    "write_fashionai_attributes",
    "write_deepfashion",
    "write_coco_people",
    "FASHIONAI_HEADER",
    "DEEPFASHION_LANDMARKS",
    "DEEPFASHION_CATEGORIES",
    "DEEPFASHION_ATTRIBUTES",
    "pair_axis_offsets",
    "occluded_fraction",
    "label_rates",
    "occluded_shares",
    "mirror_errors",
    "garment_facts",
    "REAL_FASHIONAI_FACTS",
]
