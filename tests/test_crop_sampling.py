"""Tests of fashion_lib.crop_sampling: crop_and_resize, whole-pixel crops and the maps between image and crop
pixels, and that fashion_lib.crops, the module callers import, re-exports all of it."""

from __future__ import annotations

import pytest
import torch

from fashion_lib import crop_sampling, crops
from fashion_lib.crop_sampling import (
    CropMapping,
    crop_and_resize,
    crop_pixels,
    line_from_crop,
    pixel_boxes,
    points_from_crop,
    points_to_crop,
    second_scale_crops,
)
from fashion_lib.crops import fit_boxes


def test_crops_re_exports_every_name_of_crop_sampling():
    missing = [n for n in crop_sampling.__all__ if n not in crops.__all__ or getattr(crops, n) is not
               getattr(crop_sampling, n)]
    assert not missing, f"fashion_lib.crops must re-export {missing}: callers import all crop geometry from it"


# ------------------------------------------------------------------------------------------------ crop_and_resize


def gradient_image(h: int = 64, w: int = 80) -> torch.Tensor:
    """(3, H, W): channel 0 = column index j, channel 1 = row index i, channel 2 = 5."""
    j = torch.arange(w, dtype=torch.float32).expand(h, w)
    i = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    return torch.stack([j, i, torch.full((h, w), 5.0)])


@pytest.mark.parametrize("sampling_ratio", [0, 1, 2])
def test_crop_of_gradient_image_gives_expected_pixels(sampling_ratio):
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    out = crop_and_resize(gradient_image()[None], box, (4, 5), sampling_ratio=sampling_ratio)
    # output (i, j) samples the continuous point x = 10 + (j + 0.5) * 4, y = 20 + (i + 0.5) * 10; pixel centres
    # are at k + 0.5, so the gradient's value there is x - 0.5 (and y - 0.5)
    xs = torch.tensor([11.5, 15.5, 19.5, 23.5, 27.5])
    ys = torch.tensor([24.5, 34.5, 44.5, 54.5])
    assert out.images.shape == (1, 3, 4, 5)
    torch.testing.assert_close(out.images[0, 0], xs.expand(4, 5))
    torch.testing.assert_close(out.images[0, 1], ys[:, None].expand(4, 5))
    torch.testing.assert_close(out.images[0, 2], torch.full((4, 5), 5.0))


def test_point_maps_to_crop_and_back():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    p = torch.tensor([[[17.0, 33.0, 2.0], [0.0, 0.0, 0.0]]])
    q = points_to_crop(p, boxes, (4, 5))
    # u = (17 - 10) * 5 / 20, v = (33 - 20) * 4 / 40; the absent point keeps its zeros
    torch.testing.assert_close(q, torch.tensor([[[1.75, 1.3, 2.0], [0.0, 0.0, 0.0]]]))
    torch.testing.assert_close(points_from_crop(q, boxes, (4, 5)), p)


def test_crop_pixel_centres_map_back_to_the_sampled_image_points():
    image = gradient_image()
    boxes = torch.tensor([[5.5, 7.25, 61.0, 40.0], [0.0, 0.0, 80.0, 64.0]])
    out = crop_and_resize(image[None].expand(2, -1, -1, -1), boxes, 16, sampling_ratio=1)
    ii, jj = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centres = torch.stack([jj + 0.5, ii + 0.5], -1).reshape(1, -1, 2).expand(2, -1, -1)  # crop pixels
    xy = points_from_crop(centres, boxes, 16)  # (2, 256, 2) image pixels
    # away from the border (where roi_align clamps), the gradient's value is the coordinate minus 0.5
    interior = ((xy > 0.5) & (xy < torch.tensor([79.5, 63.5]))).all(-1)
    torch.testing.assert_close(out.images[:, 0].reshape(2, -1)[interior], (xy[..., 0] - 0.5)[interior])
    torch.testing.assert_close(out.images[:, 1].reshape(2, -1)[interior], (xy[..., 1] - 0.5)[interior])


def test_crop_pixel_centres_read_their_own_image_coordinates():
    # an image whose channels hold the continuous x and y of each pixel centre: a crop pixel then reads its own
    # image coordinates, which points_from_crop must reproduce (CPN's crops: sampling_ratio 2, a non-square crop)
    h, w = 50, 70
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    image = torch.stack([xs, ys, torch.zeros_like(xs)]).float()  # (3, H, W)
    box = torch.tensor([[12.25, 8.5, 44.25, 40.5]])  # 32 x 32 px inside the image
    size = (16, 8)
    crop = crop_and_resize([image], box, size, image_index=torch.tensor([0]), sampling_ratio=2).images[0]
    u, v = torch.meshgrid(torch.arange(8) + 0.5, torch.arange(16) + 0.5, indexing="xy")  # (16, 8) each
    centres = torch.stack([u, v], -1).reshape(1, -1, 2)  # crop pixel centres
    mapped = points_from_crop(centres, box, size).reshape(16, 8, 2)
    torch.testing.assert_close(crop[0], mapped[..., 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(crop[1], mapped[..., 1], atol=1e-4, rtol=0)
    # known answer: crop pixel centre (0.5, 0.5) is image (12.25 + 0.5 * 4, 8.5 + 0.5 * 2)
    torch.testing.assert_close(mapped[0, 0], torch.tensor([14.25, 9.5]))
    torch.testing.assert_close(points_to_crop(mapped.reshape(1, -1, 2), box, size), centres, atol=1e-5, rtol=0)


def test_list_of_images_of_different_sizes_equals_per_image_crops():
    g = torch.Generator().manual_seed(2)
    images = [torch.rand(3, h, w, generator=g) for h, w in ((40, 50), (64, 48), (40, 50))]
    boxes = torch.tensor([[3.0, 4.0, 40.0, 30.0], [0.0, 10.0, 48.0, 64.0], [10.5, 0.0, 20.0, 39.0],
                          [1.0, 1.0, 9.0, 9.0]])
    index = torch.tensor([0, 1, 2, 1])
    out = crop_and_resize(images, boxes, (12, 10), image_index=index)
    for b in range(4):  # oracle: one image at a time
        alone = crop_and_resize(images[int(index[b])][None], boxes[b : b + 1], (12, 10))
        torch.testing.assert_close(out.images[b], alone.images[0])
    stacked = crop_and_resize(torch.stack([images[0], images[2]]), boxes[[0, 2]], (12, 10))
    torch.testing.assert_close(stacked.images, out.images[[0, 2]])


@pytest.mark.parametrize(
    "images, boxes, kwargs, match",
    [
        (torch.zeros(2, 3, 8, 8), torch.tensor([[0.0, 0.0, 4.0, 4.0]]), {}, "boxes has 1 rows but there are 2 images"),
        (torch.zeros(1, 3, 8, 8), torch.tensor([[4.0, 0.0, 4.0, 4.0]]), {}, r"boxes\[0\].*x1 < x2"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.tensor([[0.0, 0.0, 4.0, 4.0]]), {}, "images must be float"),
        (torch.zeros(1, 3, 8, 8), torch.tensor([[0.0, 0.0, 4.0, 4.0]]), {"image_index": torch.tensor([1])},
         r"image_index must be in \[0, 1\)"),
        (torch.zeros(3, 8, 8), torch.tensor([[0.0, 0.0, 4.0, 4.0]]), {}, r"images must be \(N, C, H, W\)"),
    ],
)
def test_crop_and_resize_rejects_bad_input(images, boxes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        crop_and_resize(images, boxes, 4, **kwargs)



# ------------------------------------------------------------------------------------------------ the second scale


@pytest.mark.parametrize("mapping", list(CropMapping))
def test_second_scale_crops_never_contain_zero_padding(mapping):
    image = 0.5 + 0.5 * torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(1))  # no pixel below 0.5
    # a square larger than the image's height: it cannot fit, so part of it must be padded
    boxes = fit_boxes(torch.tensor([[-10.0, -20.0, 45.0, 35.0], [30.0, 5.0, 48.0, 23.0]]), (40, 50))
    crops, cut, size = second_scale_crops([image], boxes, torch.tensor([0, 0]), mapping, 32)
    for crop in crops:
        assert crop.min() >= 0.5 - 1e-6, "a crop was padded with zeros"
    if mapping is CropMapping.UNRESIZED:
        assert size is None and [tuple(c.shape) for c in crops] == [(3, 55, 55), (3, 18, 18)]
        assert torch.equal(crops[1], image[:, 5:23, 30:48])  # inside the image: the pixels themselves
        assert torch.equal(crops[0][:, 0], crops[0][:, 7]), "rows above the image repeat its first row"
    else:
        assert size == 32 and all(tuple(c.shape) == (3, 32, 32) for c in crops)
        torch.testing.assert_close(cut, boxes)


def test_unresized_crop_maps_a_detection_back_to_its_original_pixel():
    image = torch.zeros(1, 50, 70)
    image[0, 12, 3] = 1.0  # the "detection": a bright pixel near the top-left corner
    # a box that leaves the image on the left and the top, whole pixels after shifting
    boxes = pixel_boxes(fit_boxes(torch.tensor([[-8.3, -4.6, 30.2, 33.9]]), (50, 70)))
    assert boxes[0, :2].tolist() == [0.0, 0.0]
    boxes = torch.tensor([[-6.0, -5.0, 30.0, 40.0]])  # and one padded on purpose (as where a box cannot fit)
    crop = crop_pixels([image], boxes)[0]
    i, j = divmod(int(crop[0].argmax()), crop.shape[-1])
    found = torch.tensor([[[j + 0.5, i + 0.5, 1.0]]])  # the crop pixel's centre, crop pixels
    back = points_from_crop(found, boxes, None)  # keys2 + [xmin, ymin]
    torch.testing.assert_close(back, torch.tensor([[[3.5, 12.5, 1.0]]]))
    torch.testing.assert_close(points_to_crop(back, boxes, None), found)


def test_line_from_crop_maps_an_axis_back_for_square_and_stretched_crops():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0]])  # 40 x 20: stretched to 32 x 32
    a, b = torch.tensor([[[12.0, 22.0], [30.0, 38.0]]]), None  # two image points on a line
    for size in (32, None):
        pc = points_to_crop(a, boxes, size)[0]  # (2, 2) crop pixels
        d = pc[1] - pc[0]
        n = torch.stack([d[1], -d[0]]) / d.norm()
        n = n if n[0] >= 0 else -n
        line = torch.cat([n, (n * pc[0]).sum()[None]])[None]  # (1, 3) in crop pixels
        b = line_from_crop(line, boxes, size)
        assert float(b[0, :2].norm()) == pytest.approx(1.0)
        assert ((b[0, :2] * a[0]).sum(-1) - b[0, 2]).abs().max() < 1e-4, "both image points lie on the mapped line"
    torch.testing.assert_close(line_from_crop(torch.zeros(1, 3), boxes, 32), torch.zeros(1, 3))
