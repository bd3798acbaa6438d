"""The 15 ImageNet-C corruptions (Hendrycks & Dietterich 2019; as COCO-C uses them, Michaelis et
al. 2019) at severities 1-5, written from their definitions in torch and vectorised (JPEG through
PIL's libjpeg, as the original), for frames of any size: ``apply(x, kind, severity, generator)``
on a (3, H, W) float image in [0, 1].

The ``imagecorruptions`` package is not used: it calls scikit-image's ``gaussian(multichannel=)``,
removed from current scikit-image, and loops over pixels in Python. Where a definition needs what
is not shipped or not vectorisable, the difference is named here:

- ``frost`` blends a frost *photograph* in the original; the photographs are not shipped, so a
  generated texture takes their place (thin bright crystal streaks over a cloudy layer), blended
  with the original weights.
- ``glass_blur`` swaps each pixel with a random neighbour within ``d`` pixels, pixel after pixel,
  in the original; here every pixel reads a random neighbour within ``d`` at once (a gather, so a
  pixel may be read twice), between the same two Gaussian blurs and as many times.
- ``motion_blur`` and ``snow``'s streaks use ImageMagick's motion blur (Wand) in the original:
  here its kernel, a one-sided line of ``2 r + 1`` taps weighted ``exp(-i^2 / (2 s^2))``, the
  frame shifted along the angle with edge pixels repeated.
- ``elastic_transform`` is COCO-C's size-relative version (displacements smoothed by a Gaussian of
  1 % of the frame's size, amplitude by severity), without ImageNet-C's 224-px affine part.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .corruption_names import FAMILIES, IMAGENET_C  # noqa: F401 - the names live where torch is not needed

# the definitions' constants, severity 1..5
LEVELS = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # noise std
    "shot_noise": (60, 25, 12, 5, 3),  # photons per unit intensity
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # fraction of values set to 0 or 1
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),  # disk radius, its blur
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),  # sigma, reach, iterations
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),  # radius, sigma
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),  # arange
    "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
             (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),  # image weight, frost weight
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),  # strength, wibble decay
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to HSV value
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # factor about the channel means
    "elastic_transform": (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12),  # displacement gain
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),  # downscale factor
    "jpeg_compression": (25, 18, 15, 10, 7),  # JPEG quality
}


def apply(x: torch.Tensor, kind: str, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(3, H, W) float in [0, 1] -> the same, corrupted; severity 0 returns ``x`` unchanged."""
    if kind not in IMAGENET_C:
        raise ValueError(f"unknown ImageNet-C corruption {kind!r}; choose one of {IMAGENET_C}")
    if severity not in (0, 1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 0..5, got {severity!r}")
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"an image must be (3, H, W), got {tuple(x.shape)}")
    if severity == 0:
        return x
    out = globals()[kind](x.float(), LEVELS[kind][severity - 1], generator or torch.Generator().manual_seed(0))
    return out.clamp(0, 1)


# helpers -----------------------------------------------------------------------------------
def _rand(g, *shape):
    return torch.rand(*shape, generator=g)


def gaussian_blur(x: torch.Tensor, sigma, truncate: float = 4.0) -> torch.Tensor:
    """Gaussian blur of (C, H, W) as scipy's ``gaussian_filter`` (kernel radius ``int(truncate *
    sigma + 0.5)``, borders mirrored), through torchvision's; a frame thinner than the kernel is
    first extended by repeating its edge. ``sigma``: one value or (sy, sx)."""
    from torchvision.transforms.v2.functional import gaussian_blur as blur
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    ry, rx = (max(int(truncate * float(v) + 0.5), 0) for v in (sy, sx))
    if ry == rx == 0:
        return x
    H, W = x.shape[-2:]
    ey, ex = max(0, ry - H + 1), max(0, rx - W + 1)
    if ey or ex:
        x = F.pad(x[None], (ex, ex, ey, ey), mode="replicate")[0]
    out = blur(x, [2 * rx + 1, 2 * ry + 1], [max(float(sx), 1e-6), max(float(sy), 1e-6)])
    return out[..., ey:ey + H, ex:ex + W]


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved by (dy, dx) pixels, the edge pixels repeated into the gap."""
    H, W = x.shape[-2:]
    rows = (torch.arange(H) - dy).clamp(0, H - 1)
    cols = (torch.arange(W) - dx).clamp(0, W - 1)
    return x[..., rows[:, None], cols[None, :]]


def line_blur(x: torch.Tensor, radius: int, sigma: float, angle: float) -> torch.Tensor:
    """ImageMagick's motion blur kernel (module docstring): sum over i = 0..2r of
    ``w_i x(p - i (sin a, cos a))``, ``w_i`` proportional to ``exp(-i^2 / (2 sigma^2))``."""
    width = 2 * int(radius) + 1
    i = torch.arange(width, dtype=torch.float32)
    w = torch.exp(-(i ** 2) / (2 * sigma ** 2))
    w = w / w.sum()
    out = torch.zeros_like(x)
    for k in range(width):
        dy, dx = round(k * math.sin(angle)), round(k * math.cos(angle))
        out = out + w[k] * _shift(x, dy, dx)
    return out


def _clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """The centre 1 / zoom of the frame scaled back to its size (bilinear)."""
    H, W = x.shape[-2:]
    h, w = max(1, math.ceil(H / zoom)), max(1, math.ceil(W / zoom))
    top, left = (H - h) // 2, (W - w) // 2
    crop = x[:, top:top + h, left:left + w]
    return F.interpolate(crop[None], size=(H, W), mode="bilinear", align_corners=False)[0]


def plasma_fractal(size: int, wibbledecay: float, g: torch.Generator) -> torch.Tensor:
    """Diamond-square fractal on a (size, size) grid (size a power of 2), in [0, 1]: ImageNet-C's
    fog layer, step for step (its noise at a step: ``wibble * U(-wibble, wibble)``, wibble from
    100, divided by ``wibbledecay`` a step)."""
    maps = torch.zeros(size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def wibbled_mean(total):
        return total / 4 + wibble * (_rand(g, *total.shape).double() * 2 - 1) * wibble

    while step >= 2:
        half = step // 2
        corners = maps[0:size:step, 0:size:step]
        total = corners + torch.roll(corners, -1, 0)
        total = total + torch.roll(total, -1, 1)
        maps[half:size:step, half:size:step] = wibbled_mean(total)
        centres = maps[half:size:step, half:size:step]
        corners = maps[0:size:step, 0:size:step]
        left = centres + torch.roll(centres, 1, 0) + corners + torch.roll(corners, -1, 1)
        maps[0:size:step, half:size:step] = wibbled_mean(left)
        top = centres + torch.roll(centres, 1, 1) + corners + torch.roll(corners, -1, 0)
        maps[half:size:step, 0:size:step] = wibbled_mean(top)
        step //= 2
        wibble /= wibbledecay
    maps = maps - maps.min()
    return (maps / maps.max().clamp_min(1e-12)).float()


# the corruptions ---------------------------------------------------------------------------
def gaussian_noise(x, c, g):
    return x + c * torch.randn(x.shape, generator=g)


def shot_noise(x, c, g):
    return torch.poisson(x * c, generator=g) / c


def impulse_noise(x, c, g):
    hit = _rand(g, *x.shape) < c
    salt = _rand(g, *x.shape) < 0.5
    return torch.where(hit, salt.float(), x)


def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """ImageNet-C's aliased disk: 1 inside the radius on a grid of at least -8..8, normalised,
    then blurred by a Gaussian (3x3 up to radius 8, else 5x5) of sigma ``alias_blur``."""
    reach = max(8, int(radius))
    L = torch.arange(-reach, reach + 1, dtype=torch.float32)
    Y, X = torch.meshgrid(L, L, indexing="ij")
    disk = ((X ** 2 + Y ** 2) <= radius ** 2).float()
    disk = disk / disk.sum()
    ksize = 3 if radius <= 8 else 5
    t = torch.arange(ksize, dtype=torch.float32) - (ksize - 1) / 2
    k = torch.exp(-(t ** 2) / (2 * alias_blur ** 2))
    k = k / k.sum()
    return F.conv2d(F.pad(disk[None, None], (ksize // 2,) * 4, mode="reflect"), (k[:, None] * k[None, :])[None, None])[0, 0]


def defocus_blur(x, c, g):
    kernel = disk_kernel(*c)
    r = kernel.shape[-1] // 2
    padded = F.pad(x[None], (r, r, r, r), mode="reflect") if min(x.shape[-2:]) > r else \
        F.pad(x[None], (r, r, r, r), mode="replicate")
    return F.conv2d(padded, kernel.expand(3, 1, *kernel.shape), groups=3)[0]


def glass_blur(x, c, g):
    sigma, reach, iterations = c
    x = gaussian_blur(x, sigma)
    H, W = x.shape[-2:]
    rows, cols = torch.arange(H)[:, None].expand(H, W), torch.arange(W)[None, :].expand(H, W)
    for _ in range(iterations):
        dy = torch.randint(-reach, reach, (H, W), generator=g)
        dx = torch.randint(-reach, reach, (H, W), generator=g)
        x = x[:, (rows + dy).clamp(0, H - 1), (cols + dx).clamp(0, W - 1)]
    return gaussian_blur(x, sigma)


def motion_blur(x, c, g):
    angle = math.radians(float(_rand(g, 1)) * 90 - 45)
    return line_blur(x, c[0], c[1], angle)


def zoom_blur(x, c, g):
    zooms = np.arange(*c).tolist()  # numpy's float steps, as the definition (severity 1: 12 zooms)
    out = x.clone()
    for z in zooms:
        out = out + _clipped_zoom(x, z)
    return out / (len(zooms) + 1)


def snow(x, c, g):
    H, W = x.shape[-2:]
    loc, scale, zoom, threshold, radius, sigma, keep = c
    layer = loc + scale * torch.randn(1, H, W, generator=g)
    layer = _clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    angle = math.radians(float(_rand(g, 1)) * 90 - 135)
    layer = line_blur(layer, radius, sigma, angle)
    grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    x = keep * x + (1 - keep) * torch.maximum(x, grey * 1.5 + 0.5)
    return x + layer + torch.rot90(layer, 2, (1, 2))


def frost_texture(H: int, W: int, g: torch.Generator) -> torch.Tensor:
    """A generated stand-in for ImageNet-C's frost photographs (module docstring): cloudy fractal
    plus thin bright streaks at random angles, bluish-white, in [0, 1]."""
    size = 1 << max(3, math.ceil(math.log2(max(H, W))))
    cloud = plasma_fractal(size, 2.0, g)[:H, :W]
    seeds = (_rand(g, 1, H, W) > 0.995).float()
    streaks = torch.zeros(1, H, W)
    for _ in range(3):
        angle = float(_rand(g, 1)) * math.pi
        streaks = streaks + line_blur(seeds, max(2, min(H, W) // 16), max(1.0, min(H, W) / 24), angle)
    streaks = (streaks / streaks.max().clamp_min(1e-12)).clamp(0, 1) ** 0.5
    frost = 0.55 * cloud + 0.6 * streaks[0]
    tint = torch.tensor([0.85, 0.93, 1.0])[:, None, None]
    return (frost[None] * tint).clamp(0, 1)


def frost(x, c, g):
    return c[0] * x + c[1] * frost_texture(*x.shape[-2:], g)


def fog(x, c, g):
    H, W = x.shape[-2:]
    size = 1 << max(3, math.ceil(math.log2(max(H, W))))
    peak = x.max()
    x = x + c[0] * plasma_fractal(size, c[1], g)[:H, :W][None]
    return x * peak / (peak + c[0])


def brightness(x, c, g):
    value = x.max(0).values  # HSV value; hue and saturation kept: RGB scales with it
    new = (value + c).clamp(0, 1)
    scale = torch.where(value > 0, new / value.clamp_min(1e-12), torch.zeros_like(value))
    return torch.where(value > 0, x * scale, new.expand_as(x))


def contrast(x, c, g):
    means = x.mean(dim=(1, 2), keepdim=True)
    return (x - means) * c + means


def elastic_transform(x, c, g):
    H, W = x.shape[-2:]
    reach = H * 0.005
    field = (_rand(g, 2, H, W) * 2 - 1) * reach
    field = gaussian_blur(field, (H * 0.01, W * 0.01), truncate=3.0) * c
    dy, dx = field[0], field[1]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    grid = torch.stack([(xs + dx) / max(W - 1, 1) * 2 - 1, (ys + dy) / max(H - 1, 1) * 2 - 1], -1)
    return F.grid_sample(x[None], grid[None], mode="bilinear", padding_mode="reflection", align_corners=True)[0]


def pixelate(x, c, g):
    H, W = x.shape[-2:]
    small = F.interpolate(x[None], size=(max(1, int(H * c)), max(1, int(W * c))), mode="area")
    return F.interpolate(small, size=(H, W), mode="nearest")[0]


def jpeg_compression(x, c, g):
    # the codec is libjpeg through PIL (torchvision's image encoders are deprecated for TorchCodec)
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray((x * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()).save(
        buffer, format="JPEG", quality=int(c))
    back = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(back).permute(2, 0, 1).contiguous()
