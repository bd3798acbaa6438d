"""The names of ImageNet-C's 15 corruptions and their families, without torch (the CLI and the
data layer list them; ``stpn.data.imagenet_c`` computes them)."""

IMAGENET_C = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
              "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
              "jpeg_compression")
FAMILIES = {"noise": IMAGENET_C[:3], "blur": IMAGENET_C[3:7], "weather": IMAGENET_C[7:10], "digital": IMAGENET_C[10:]}
