"""torch.hub entry points, loaded from this checkout as a user would (``source="local"``)."""
from pathlib import Path

import torch

from conftest import TINY_SWIN, tiny_config, tiny_stpn
from stpn.detection.task import DetectionTask
from stpn.engine.trainer import train

REPO = str(Path(__file__).resolve().parents[1])


def test_hubconf_dependencies_are_importable():
    import importlib
    import importlib.util
    spec = importlib.util.spec_from_file_location("hubconf", Path(REPO) / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    for name in hubconf.dependencies:  # what torch.hub checks before it loads an entry point
        importlib.import_module(name)
    assert all(callable(getattr(hubconf, n)) for n in ("stpn_backbone", "detector", "segmenter", "tracker"))


def test_hub_backbone_is_stpn_and_computes_the_same_maps():
    hub = torch.hub.load(REPO, "stpn_backbone", source="local", backbone_kwargs=dict(TINY_SWIN),
                         predictor_kwargs=dict(num_groups=4))
    direct = tiny_stpn().eval()
    hub.load_state_dict(direct.state_dict())
    x, s = torch.rand(1, 3, 64, 64), torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(hub(x, s), direct(x, s)):
            torch.testing.assert_close(a, b)
    assert not hub.training


def test_hub_detector_loads_a_trained_run_and_untrained_models_build(tmp_path):
    out = train(tiny_config(tmp_path), DetectionTask(), max_iterations=1)
    hub = torch.hub.load(REPO, "detector", source="local", weights=str(out / "model.safetensors"))
    direct, _ = DetectionTask().load(out / "model.safetensors")
    for (k, a), b in zip(hub.state_dict().items(), direct.state_dict().values()):
        assert torch.equal(a, b), k
    image, support = torch.rand(3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(hub([image], support=[support])[0]["boxes"],
                                   direct([image], support=[support])[0]["boxes"])
    seg = torch.hub.load(REPO, "segmenter", source="local")
    assert type(seg).__name__ == "STPNSegmenter" and seg.roi_heads.has_mask()
    trk = torch.hub.load(REPO, "tracker", source="local")
    assert type(trk).__name__ == "STPNTracker"
