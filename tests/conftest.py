import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread for every torch in the suite, the subprocesses it starts included: on a busy 2-core
# machine two threads per process oversubscribe the cores and slow a test many times over.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

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


TINY_DETECTION = [  # the demo detector, tiny and fast
    "model.backbone_kwargs={embed_dim: 16, depths: [1, 1, 1, 1], num_heads: [1, 1, 2, 2], window_size: 4}",
    "detection.fpn_channels=16", "detection.box_head_dim=32", "detection.min_size=[64]", "detection.max_size=96",
    "detection.test_min_size=64", "detection.test_max_size=96", "detection.rpn_batch_size_per_image=16",
    "detection.box_batch_size_per_image=16",
    "data.synth={train_videos: 2, val_videos: 1, frames: 6, width: 96, height: 64, classes: 3, max_objects: 2}",
    "optim.batch_size=2", "optim.epochs=2", "optim.warmup_iters=2", "run.checkpoint_every=3", "run.log_every=1",
]


def _tiny(name, tiny, tmp_path, extra):
    from stpn.engine.config import load_config, packaged_config
    return load_config(packaged_config(name), tiny + [f"data.root={tmp_path / 'data'}", f"run.out={tmp_path / 'run'}", *extra])


def tiny_config(tmp_path, *extra):
    """The demo detection config, tiny, with data and run under tmp_path."""
    return _tiny("demo_cpu", TINY_DETECTION, tmp_path, extra)


TINY_SEGMENTATION = [  # the demo segmenter, tiny and fast
    "model.backbone_kwargs={embed_dim: 16, depths: [1, 1, 1, 1], num_heads: [1, 1, 2, 2], window_size: 4}",
    "segmentation.fpn_channels=16", "segmentation.box_head_dim=32", "segmentation.min_size=[64]",
    "segmentation.max_size=96", "segmentation.test_min_size=64", "segmentation.test_max_size=96",
    "segmentation.rpn_batch_size_per_image=16", "segmentation.box_batch_size_per_image=16",
    "segmentation.mask_layers=[8]",
    "data.synth={train_videos: 2, val_videos: 2, frames: 6, width: 96, height: 64, classes: 3, min_objects: 2, max_objects: 3}",
    "optim.batch_size=2", "optim.epochs=1", "optim.warmup_iters=2", "run.checkpoint_every=3", "run.log_every=1",
]


def tiny_vis_config(tmp_path, *extra):
    """The demo segmentation config, tiny, with data and run under tmp_path."""
    return _tiny("vis_demo_cpu", TINY_SEGMENTATION, tmp_path, extra)


DET_XML = """<annotation><folder>ILSVRC2013_train</folder><filename>{name}</filename>
<size><width>64</width><height>48</height></size>{objects}</annotation>"""
DET_OBJECT = "<object><name>{wnid}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"


def write_det(root, images):
    """A tiny ImageNet DET layout: {image path under train/: [(wnid, box)]} -> the 30-class list."""
    import numpy as np
    from PIL import Image
    lines = []
    for i, (name, objects) in enumerate(images.items(), 1):
        for kind, ext in (("Data", "JPEG"), ("Annotations", "xml")):
            (root / kind / "DET" / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(root / "Data" / "DET" / "train" / f"{name}.JPEG")
        xml = DET_XML.format(name=name, objects="".join(DET_OBJECT.format(wnid=w, x1=b[0], y1=b[1], x2=b[2], y2=b[3])
                                                       for w, b in objects))
        (root / "Annotations" / "DET" / "train" / f"{name}.xml").write_text(xml)
        lines.append(f"train/{name} {i}")
    (root / "ImageSets").mkdir(exist_ok=True)
    (root / "ImageSets" / "DET_train_30classes.txt").write_text("\n".join(lines) + "\n")


def assert_same_detections(got, expected, box_atol=1e-3, score_atol=1e-5, nms_iou=0.5, top_k=None):
    """Two computations' detections of one image are the same *set*: each detection of one has a
    partner of the same label in the other whose box and score agree within the tolerances.

    Order is not compared: two scores a few ulps apart may sort either way on another CPU or
    thread count. Two places where such a tie may also change *which* boxes survive are allowed:
    an NMS tie (a detection left unmatched on each side, same label, scores equal within
    ``score_atol``, overlapping by more than ``nms_iou`` but distinct boxes, a pixel or more
    apart: NMS kept the other one of the pair) and, when both sets hold ``top_k``
    detections, the cut (unmatched detections whose score equals the lowest kept one within
    ``score_atol``). Everything else unmatched fails, naming it.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment
    from torchvision.ops import box_iou

    def arrays(d):
        return (np.asarray(d["boxes"], np.float64).reshape(-1, 4), np.asarray(d["scores"], np.float64).reshape(-1),
                np.asarray(d["labels"]).reshape(-1))

    (bg, sg, lg), (be, se, le) = arrays(got), arrays(expected)
    assert len(sg) == len(se), f"{len(sg)} detections vs {len(se)} expected"
    box_err = np.abs(bg[:, None] - be[None]).max(-1) if len(bg) and len(be) else np.zeros((len(bg), len(be)))
    score_ok = (lg[:, None] == le[None]) & (np.abs(sg[:, None] - se[None]) <= score_atol)
    ok = score_ok & (box_err <= box_atol)
    rows, cols = linear_sum_assignment(~ok)  # as many tolerable pairs as possible
    pairs = [(i, j) for i, j in zip(rows, cols) if ok[i, j]]
    left_g = sorted(set(range(len(sg))) - {i for i, _ in pairs})
    left_e = sorted(set(range(len(se))) - {j for _, j in pairs})
    iou = box_iou(torch.as_tensor(bg), torch.as_tensor(be)).numpy()
    nms_tie = score_ok & (iou > nms_iou) & (box_err >= 1.0)
    cut = top_k is not None and len(sg) == top_k
    bad = [f"got[{i}] label {lg[i]} score {sg[i]:.7f} box {bg[i].round(3).tolist()}" for i in left_g
           if not (nms_tie[i, left_e].any() or (cut and sg[i] - sg.min() <= score_atol))]
    bad += [f"expected[{j}] label {le[j]} score {se[j]:.7f} box {be[j].round(3).tolist()}" for j in left_e
            if not (nms_tie[left_g, j].any() or (cut and se[j] - se.min() <= score_atol))]
    assert not bad, f"{len(pairs)} of {len(se)} detections match; unmatched: " + "; ".join(bad[:6])
