"""The ImageNet-C corruptions and the video ones, each against its definition: severity 0 is the
identity, known values on small arrays, independent references where one exists (colorsys for
HSV, PIL for JPEG and box resizing, scipy for the Gaussian)."""
import colorsys
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from stpn.data.corrupt import ALL, IMAGENET_C, VIDEO, corrupt, corrupt_video, h264_round_trip, shown_frame
from stpn.data.imagenet_c import LEVELS, apply, disk_kernel, gaussian_blur, line_blur, plasma_fractal
from stpn.data.types import ArrayFrames, FrameTargets, Video


def image(h=24, w=32, seed=0):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", IMAGENET_C)
def test_severity_0_is_the_identity_and_every_severity_stays_an_image(kind):
    x = image()
    assert torch.equal(apply(x, kind, 0), x)
    for s in (1, 5):
        y = apply(x, kind, s, gen())
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        torch.testing.assert_close(apply(x, kind, s, gen()), y)  # deterministic from the generator
    with pytest.raises(ValueError, match="severity must be 0..5"):
        apply(x, kind, 6)


def test_noise_corruptions_follow_their_formulas():
    x = image(64, 64)
    c = LEVELS["gaussian_noise"][2]
    noise = torch.randn(x.shape, generator=gen())
    torch.testing.assert_close(apply(x, "gaussian_noise", 3, gen()), (x + c * noise).clamp(0, 1))
    c = LEVELS["shot_noise"][2]
    torch.testing.assert_close(apply(x, "shot_noise", 3, gen()), (torch.poisson(x * c, generator=gen()) / c).clamp(0, 1))
    flat = torch.full((3, 200, 200), 0.5)
    y = apply(flat, "shot_noise", 1, gen())  # Poisson(0.5 c) / c: mean 0.5, variance 0.5 / c (c = 60: no clipping)
    assert float(y.mean()) == pytest.approx(0.5, abs=0.005) and float(y.var()) == pytest.approx(0.5 / 60, rel=0.05)
    y = apply(flat, "impulse_noise", 5, gen())
    hit = y != 0.5
    assert float(hit.float().mean()) == pytest.approx(0.27, abs=0.01)  # the fraction of values set
    assert set(y[hit].unique().tolist()) == {0.0, 1.0} and float(y[hit].mean()) == pytest.approx(0.5, abs=0.02)


def test_the_defocus_kernel_is_imagenet_cs_aliased_disk():
    k = disk_kernel(3, 0.1)
    assert k.shape == (17, 17) and float(k.sum()) == pytest.approx(1.0, abs=1e-5)
    # with a tiny alias blur the kernel is the disk: 29 grid points within radius 3 (x^2 + y^2 <= 9)
    assert int((k > 1e-4).sum()) == 29 and float(k[8, 8]) == pytest.approx(1 / 29, rel=1e-3)
    assert disk_kernel(10, 0.5).shape == (21, 21)
    x = torch.zeros(3, 21, 21)
    x[:, 10, 10] = 1
    torch.testing.assert_close(apply(x, "defocus_blur", 1) [0], k.flip(0, 1)[0:17, 0:17].new_zeros(21, 21).index_put_(
        (torch.arange(2, 19)[:, None], torch.arange(2, 19)[None, :]), k.flip(0, 1)), atol=1e-6, rtol=0)


def test_the_gaussian_is_scipys():
    from scipy.ndimage import gaussian_filter
    x = image(20, 30)
    ref = np.stack([gaussian_filter(c, sigma=1.5, mode="mirror", truncate=4.0) for c in x.numpy()])
    np.testing.assert_allclose(gaussian_blur(x, 1.5).numpy(), ref, atol=1e-5)
    # per-axis sigmas and truncation (elastic_transform's), on a frame that is not square
    ref = np.stack([gaussian_filter(c, sigma=(1.2, 2.0), mode="mirror", truncate=3.0) for c in x.numpy()])
    np.testing.assert_allclose(gaussian_blur(x, (1.2, 2.0), truncate=3.0).numpy(), ref, atol=1e-5)
    thin = torch.rand(3, 3, 40)  # thinner than the kernel: still the frame's size, a flat frame stays flat
    assert gaussian_blur(thin, 1.5).shape == thin.shape
    torch.testing.assert_close(gaussian_blur(torch.full((3, 3, 40), 0.25), 1.5), torch.full((3, 3, 40), 0.25))


def test_motion_blur_is_a_one_sided_gaussian_weighted_line():
    x = torch.zeros(1, 9, 40)
    x[0, 4, 5] = 1
    y = line_blur(x, 3, 2.0, 0.0)  # angle 0: along +x; taps i = 0..6
    w = torch.exp(-torch.arange(7.0) ** 2 / 8)
    torch.testing.assert_close(y[0, 4, 5:12], w / w.sum())
    assert float(y.sum()) == pytest.approx(1.0) and float(y[0, 4, :5].abs().sum()) == 0
    flat = torch.full((3, 16, 16), 0.3)
    torch.testing.assert_close(apply(flat, "motion_blur", 5, gen()), flat)  # a flat frame stays flat


def test_zoom_blur_averages_the_frame_with_its_zoomed_centres():
    x = image(16, 16)
    flat = torch.full((3, 16, 16), 0.7)
    torch.testing.assert_close(apply(flat, "zoom_blur", 3), flat)
    # severity 1: the frame and the 12 zooms of np.arange(1, 1.11, 0.01), averaged
    from stpn.data.imagenet_c import _clipped_zoom
    zooms = np.arange(1, 1.11, 0.01)
    expected = (x + sum(_clipped_zoom(x, z) for z in zooms)) / (len(zooms) + 1)
    torch.testing.assert_close(apply(x, "zoom_blur", 1), expected.clamp(0, 1))
    torch.testing.assert_close(_clipped_zoom(x, 1.0), x)  # zoom 1 is the frame
    big = _clipped_zoom(torch.arange(16.0).view(1, 4, 4), 2.0)  # zoom 2: the centre 2x2 fills the frame
    assert float(big[0, 0, 0]) == 5.0 and float(big[0, 3, 3]) == 10.0


def test_glass_blur_keeps_a_flat_frame_and_only_moves_pixels_locally():
    flat = torch.full((3, 20, 20), 0.4)
    torch.testing.assert_close(apply(flat, "glass_blur", 5, gen()), flat)
    x = torch.zeros(3, 20, 20)
    x[:, :, 10:] = 1  # a vertical edge: after the blur and local moves the far sides keep their values
    y = apply(x, "glass_blur", 1, gen())
    assert float(y[:, :, :4].max()) < 0.01 and float(y[:, :, 16:].min()) > 0.99


def test_weather_corruptions_follow_their_formulas():
    g = gen(3)
    p = plasma_fractal(16, 2.0, g)
    assert p.shape == (16, 16) and float(p.min()) == 0 and float(p.max()) == pytest.approx(1.0)
    x = image(16, 16)
    strength, decay = LEVELS["fog"][0]
    fractal = plasma_fractal(16, decay, gen())
    peak = x.max()
    torch.testing.assert_close(apply(x, "fog", 1, gen()), ((x + strength * fractal) * peak / (peak + strength)).clamp(0, 1))
    from stpn.data.imagenet_c import frost_texture
    image_weight, frost_weight = LEVELS["frost"][2]
    texture = frost_texture(16, 16, gen())
    torch.testing.assert_close(apply(x, "frost", 3, gen()), (image_weight * x + frost_weight * texture).clamp(0, 1))
    y = apply(x, "snow", 3, gen())  # snow only brightens: max(x, 1.5 grey + 0.5) blended in, flakes added
    assert (y >= LEVELS["snow"][2][-1] * x - 1e-6).all() and float(y.mean()) > float(x.mean())


def test_brightness_adds_to_the_hsv_value_as_colorsys_does():
    x = image(4, 5)
    y = apply(x, "brightness", 2)
    for i in range(4):
        for j in range(5):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
            np.testing.assert_allclose(y[:, i, j].numpy(), colorsys.hsv_to_rgb(h, s, min(1.0, v + 0.2)), atol=1e-6)
    black = torch.zeros(3, 2, 2)
    torch.testing.assert_close(apply(black, "brightness", 5), torch.full((3, 2, 2), 0.5))


def test_contrast_on_a_hand_computed_case():
    x = torch.tensor([[[0.0, 1.0]], [[0.2, 0.4]], [[0.5, 0.5]]])  # per-channel means 0.5, 0.3, 0.5
    y = apply(x, "contrast", 1)  # factor 0.4 about each channel's mean
    torch.testing.assert_close(y, torch.tensor([[[0.3, 0.7]], [[0.26, 0.34]], [[0.5, 0.5]]]))


def test_elastic_transform_moves_pixels_by_a_little_and_keeps_a_flat_frame():
    flat = torch.full((3, 30, 40), 0.6)
    torch.testing.assert_close(apply(flat, "elastic_transform", 5, gen()), flat)
    x = torch.linspace(0, 1, 40).expand(3, 30, 40).contiguous()  # a ramp: the value says where a pixel came from
    y = apply(x, "elastic_transform", 5, gen())
    moved = (y - x).abs() * 39  # in pixels along the ramp
    assert 0 < float(moved.max()) < 10


def test_pixelate_is_box_down_then_nearest_up():
    x = torch.arange(16.0).view(1, 4, 4).expand(3, 4, 4) / 15
    y = apply(x, "pixelate", 2)  # factor 0.5: 2x2 blocks, each the mean of its four pixels
    blocks = x.reshape(3, 2, 2, 2, 2).mean(dim=(2, 4))
    torch.testing.assert_close(y, blocks.repeat_interleave(2, 1).repeat_interleave(2, 2))
    # PIL's BOX down-sampling agrees on whole-number factors
    pil = Image.fromarray((x[0].numpy() * 255).astype(np.uint8)).resize((2, 2), Image.BOX)
    np.testing.assert_allclose(np.asarray(pil) / 255, blocks[0].numpy(), atol=1 / 255)


def test_jpeg_compression_is_pils_jpeg_at_the_same_quality():
    x = image(32, 32, seed=4)
    y = apply(x, "jpeg_compression", 3)  # quality 15
    buffer = io.BytesIO()
    Image.fromarray((x * 255).round().byte().permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=15)
    ref = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(y.permute(1, 2, 0).numpy(), ref, atol=1e-6)


def test_every_named_corruption_runs_on_a_uint8_frame_and_video_kinds_need_a_video():
    frame = (image(20, 24).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    for kind in ALL:
        if kind in VIDEO:
            with pytest.raises(ValueError, match="corrupts a video"):
                corrupt(frame, kind, 3)
            continue
        out = corrupt(frame, kind, 3, seed=(1, 2))
        assert out.shape == frame.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, corrupt(frame, kind, 3, seed=(1, 2)))
    with pytest.raises(ValueError, match="unknown corruption 'rain'"):
        corrupt(frame, "rain", 1)


def _video(n=12, h=16, w=24):
    frames = [np.full((h, w, 3), 10 * t, np.uint8) for t in range(n)]
    return Video("v", ArrayFrames(frames), w, h, [FrameTargets(np.zeros((0, 4)), [], []) for _ in range(n)])


def test_frame_drops_repeat_the_last_kept_frame():
    # 15 of 30 fps: every other frame kept; 6 of 30: one in five
    assert [shown_frame(t, 15) for t in range(6)] == [0, 0, 2, 2, 4, 4]
    assert [shown_frame(t, 6) for t in range(11)] == [0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 10]
    assert [shown_frame(t, 30) for t in range(4)] == [0, 1, 2, 3]
    v = corrupt_video(_video(), "frame_drop", 2)  # 15 fps
    assert [int(v.frames[t][0, 0, 0]) for t in range(6)] == [0, 0, 20, 20, 40, 40]


def test_temporal_average_is_the_mean_of_the_last_frames():
    v = corrupt_video(_video(), "temporal_average", 2)  # 3 frames
    assert [int(v.frames[t][0, 0, 0]) for t in range(5)] == [0, 5, 10, 20, 30]
    jumping = corrupt_video(_video(), "temporal_average", 2)  # read out of order: the same frames
    assert [int(jumping.frames[t][0, 0, 0]) for t in (4, 0, 9, 3, 2, 3)] == [30, 0, 80, 20, 10, 20]


def test_h264_keeps_the_frames_and_loses_more_at_lower_bitrates():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1, 1, 3))
    frames = [np.clip(base + rng.normal(0, 40, (48, 64, 3)), 0, 255).astype(np.uint8) for _ in range(6)]
    errors = []
    for bpp in (0.4, 0.0125):
        back = h264_round_trip(frames, bpp)
        assert len(back) == 6 and back[0].shape == (48, 64, 3)
        errors.append(np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(frames, back)]))
    assert errors[1] > errors[0]
    odd = h264_round_trip([f[:47, :63] for f in frames[:2]], 0.1)  # odd sizes are padded for the codec
    assert odd[0].shape == (47, 63, 3)
    v = corrupt_video(_video(), "h264", 5)
    assert v.frames[3].shape == (16, 24, 3) and math.isfinite(float(v.frames[3].mean()))
