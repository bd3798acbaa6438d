import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

# A Swin with a 32-dim embedding and 4x4 windows: every mechanism of Swin-T at a tiny cost.
TINY_SWIN = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4)
TINY_VIT = dict(embed_dim=32, depth=4, num_heads=2, img_size=64)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_stpn(**kwargs):
    from stpn import STPN
    kwargs.setdefault("backbone", "swin_tiny_patch4_window7_224")
    if "swin" in kwargs["backbone"]:
        kwargs.setdefault("backbone_kwargs", dict(TINY_SWIN))
    else:
        kwargs.setdefault("backbone_kwargs", dict(TINY_VIT))
    if kwargs.get("predictor", "attention") == "attention":
        kwargs.setdefault("predictor_kwargs", dict(num_groups=4))
    return STPN(**kwargs)
