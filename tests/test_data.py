import json

import numpy as np
import pytest

from conftest import write_det
from stpn.cli import main
from stpn.core.sampling import SupportConfig
from stpn.data import (
    CORRUPTIONS,
    AnnotationError,
    ArrayFrames,
    FrameTargets,
    SynthConfig,
    Video,
    corrupt,
    corrupt_video,
    open_video,
    read_got10k,
    read_vid,
    read_ytvis,
    synth_video,
    write_vid,
    write_video,
)
from stpn.data.clips import ClipDataset
from stpn.data.synth import visible_only


def small_video(name="clip_a", frames=3):
    targets = [FrameTargets([[2, 3, 20, 30], [40, 10, 60, 50]], [1, 30], [0, 5],
                            extra={"occluded": np.array([t == 1, False])}) for t in range(frames)]
    images = [np.full((64, 80, 3), (40 * t) % 256, np.uint8) for t in range(frames)]
    return Video(name, ArrayFrames(images), 80, 64, targets)


def test_vid_layout_round_trip(tmp_path):
    write_vid(tmp_path, "val", [small_video("a"), small_video("b", 2)], progress=False)
    assert (tmp_path / "ImageSets" / "VID_val_frames.txt").read_text().splitlines()[3] == "val/b/000000 4"
    back = read_vid(tmp_path, "val", progress=False)
    assert [v.name for v in back] == ["a", "b"] and back[1].meta["frame_indices"] == [4, 5]
    tg = back[0].targets[1]
    assert tg.boxes.tolist() == [[2, 3, 20, 30], [40, 10, 60, 50]]
    assert tg.labels.tolist() == [1, 30] and tg.track_ids.tolist() == [0, 5]
    assert tg.extra["occluded"].tolist() == [True, False]
    assert back[0].frames[2].shape == (64, 80, 3) and abs(int(back[0].frames[2].mean()) - 80) <= 2


def test_vid_without_frame_list_numbers_frames_in_order(tmp_path):
    write_vid(tmp_path, "val", [small_video("a", 2)], progress=False)
    (tmp_path / "ImageSets" / "VID_val_frames.txt").unlink()
    assert read_vid(tmp_path, "val", progress=False)[0].meta["frame_indices"] == [1, 2]


def _xml(tmp_path):
    write_vid(tmp_path, "val", [small_video("a", 1)], progress=False)
    return tmp_path / "Annotations" / "VID" / "val" / "a" / "000000.xml"


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("</annotation>", ""), "000000.xml: malformed XML"),
    (lambda s: s.replace("n02691156", "n99999999"), "object 0: unknown class 'n99999999'"),
    (lambda s: s.replace("<xmax>20</xmax>", "<xmax>1</xmax>"), r"object 0: box \[2, 3, 1, 30\] has zero area"),
    (lambda s: s.replace("<ymax>50</ymax>", "<ymax>500</ymax>"), r"object 1: box \[40, 10, 60, 500\] lies outside the 80x64 image"),
    (lambda s: s.replace("<width>80</width>", ""), "missing <width>"),
])
def test_malformed_vid_annotations_name_the_file_and_object(tmp_path, edit, message):
    xml = _xml(tmp_path)
    xml.write_text(edit(xml.read_text()))
    with pytest.raises(AnnotationError, match=message):
        read_vid(tmp_path, "val", progress=False)


def test_skipping_invalid_objects_is_explicit_and_counted(tmp_path):
    xml = _xml(tmp_path)
    xml.write_text(xml.read_text().replace("n02691156", "n99999999"))
    video = read_vid(tmp_path, "val", skip_invalid=True, progress=False)[0]
    assert video.meta["skipped_objects"] == 1 and video.targets[0].labels.tolist() == [30]


def test_missing_frame_or_annotation_is_named(tmp_path):
    write_vid(tmp_path, "val", [small_video("a", 2)], progress=False)
    (tmp_path / "Data" / "VID" / "val" / "a" / "000001.JPEG").unlink()
    video = read_vid(tmp_path, "val", progress=False)[0]
    with pytest.raises(FileNotFoundError, match="frame 1 is missing: .*a/000001.JPEG"):
        video.frames[1]
    (tmp_path / "Annotations" / "VID" / "val" / "a" / "000001.xml").unlink()
    with pytest.raises(FileNotFoundError, match="annotation of frame a/000001 is missing"):
        read_vid(tmp_path, "val", progress=False)


def test_generator_is_deterministic_by_seed():
    config = SynthConfig(videos=1, frames=10, width=96, height=64, seed=3)
    a, chosen_a, kinds_a = synth_video(config, 0)
    b, chosen_b, kinds_b = synth_video(config, 0)
    assert chosen_a == chosen_b and kinds_a == kinds_b
    assert all(np.array_equal(a.frames[t], b.frames[t]) for t in range(10))
    assert all(np.array_equal(x.boxes, y.boxes) for x, y in zip(a.targets, b.targets))
    other, _, _ = synth_video(SynthConfig(videos=1, frames=10, width=96, height=64, seed=4), 0)
    assert not np.array_equal(a.frames[0], other.frames[0])


def test_generator_object_size_sets_the_object_side():
    W, H = 160, 120
    for lo, hi in ((0.2, 0.25), (0.6, 0.7)):
        config = SynthConfig(videos=1, frames=1, width=W, height=H, max_objects=1, object_size=(lo, hi), seed=2)
        for i in range(5):
            video, _, _ = synth_video(config, i)
            x1, y1, x2, y2 = video.targets[0].boxes[0]
            # unclipped sides are side * U(0.8, 1.25); boxes start fully inside the frame
            assert lo * 0.8 * H - 1 <= max(x2 - x1, y2 - y1) and min(x2 - x1, y2 - y1) <= hi * 1.25 * H + 1
    with pytest.raises(ValueError, match="object_size"):
        SynthConfig(object_size=(0.5, 0.4))


def _high_frequency(img, box):
    x1, y1, x2, y2 = (int(v) for v in box)
    patch = img[y1 + 2:y2 - 2, x1 + 2:x2 - 2].astype(np.float32).mean(-1)
    return float(np.abs(np.diff(patch, axis=0)).mean() + np.abs(np.diff(patch, axis=1)).mean())


@pytest.mark.parametrize("kind", ["motion_blur", "defocus", "low_light", "occlusion"])
def test_deteriorated_frames_hide_the_pattern_but_keep_the_object(kind):
    config = SynthConfig(videos=1, frames=40, width=128, height=96, max_objects=1, deteriorated=0.5, kinds=(kind,), seed=1)
    video, chosen, kinds = synth_video(config, 0)
    assert chosen and set(kinds) == {kind} and 0 not in chosen
    assert all(b - a > 1 for a, b in zip(chosen, chosen[1:]))  # never two in a row
    t = chosen[0]
    box = video.targets[t].boxes[0]
    sharp = np.mean([_high_frequency(video.frames[s], video.targets[s].boxes[0]) for s in (t - 1, t + 1)])
    if kind == "occlusion":  # the centre is covered by a flat occluder
        assert _high_frequency(video.frames[t], box) < 0.5 * sharp
    elif kind == "low_light":  # the pattern's contrast drops under the noise
        patch = video.frames[t][int(box[1]) + 2:int(box[3]) - 2, int(box[0]) + 2:int(box[2]) - 2].astype(float)
        assert patch.mean() < 60
    else:
        assert _high_frequency(video.frames[t], box) < 0.5 * sharp
    assert video.targets[t].visible[0]  # still annotated where it is


def test_synth_writes_each_layout_with_a_sidecar_that_reads_back(tmp_path):
    for fmt in ("vid", "ytvis", "got10k"):
        assert main(["data", "synth", "--format", fmt, "--out", str(tmp_path / fmt), "--videos", "2", "--frames", "6",
                     "--size", "96x64", "--seed", "5"]) == 0
        sidecar = json.loads((tmp_path / fmt / "deteriorated.json").read_text())
        assert set(sidecar["videos"]) == {"synth_0005_00000", "synth_0005_00001"}
        assert sidecar["fraction"] == pytest.approx(
            sum(len(v["frames"]) for v in sidecar["videos"].values()) / 12)
    config = SynthConfig(videos=2, frames=6, width=96, height=64, seed=5)
    generated = [visible_only(synth_video(config, i)[0]) for i in range(2)]
    vid = read_vid(tmp_path / "vid", "val", progress=False)
    assert all(np.allclose(g.boxes, r.boxes, atol=0.5) and np.array_equal(g.labels, r.labels)
               for gv, rv in zip(generated, vid) for g, r in zip(gv.targets, rv.targets))
    yt, cats = read_ytvis(tmp_path / "ytvis" / "instances.json")
    assert len(yt) == 2 and [c["id"] for c in cats] == [1, 2, 3]
    got = read_got10k(tmp_path / "got10k", "val", progress=False)
    assert len(got) == 2 and len(got[0]) == 6
    indices = json.loads((tmp_path / "vid" / "deteriorated.json").read_text())["vid_frame_indices"]
    first = json.loads((tmp_path / "vid" / "deteriorated.json").read_text())["videos"]["synth_0005_00000"]["frames"]
    assert [i for i in indices if i <= 6] == [f + 1 for f in first]


def test_corruptions_are_deterministic_and_grow_with_severity():
    rng = np.random.default_rng(0)
    frame = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    for kind in CORRUPTIONS:
        a, b = corrupt(frame, kind, 3, seed=7), corrupt(frame, kind, 3, seed=7)
        assert np.array_equal(a, b) and a.shape == frame.shape and a.dtype == np.uint8
        changes = [np.abs(corrupt(frame, kind, s, seed=7).astype(float) - frame).mean() for s in (1, 5)]
        assert changes[1] > changes[0] > 0, kind


def test_corrupted_video_is_the_same_whatever_the_access_order():
    video = small_video(frames=3)
    cv = corrupt_video(video, "noise", 4, seed=1)
    later = [cv.frames[2], cv.frames[0]]
    again = corrupt_video(video, "noise", 4, seed=1)
    assert np.array_equal(later[0], again.frames[2]) and np.array_equal(later[1], again.frames[0])
    with pytest.raises(ValueError, match="severity must be 1..5"):
        corrupt_video(video, "noise", 6)
    with pytest.raises(ValueError, match="unknown corruption 'rain'"):
        corrupt_video(video, "rain", 2)


def test_video_file_with_audio_odd_size_and_variable_frame_rate(tmp_path):
    from fractions import Fraction

    import av
    path = tmp_path / "clip.mp4"
    times = [0, 1, 2, 5, 6, 10, 11, 12]  # irregular timestamps (units of 1/30 s)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 98, 62, "yuv420p"
        video.codec_context.time_base = Fraction(1, 30)
        audio = container.add_stream("aac", rate=16000)
        for i, t in enumerate(times):
            img = np.full((62, 98, 3), 20 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 30)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        samples.sample_rate = 16000
        for packet in audio.encode(samples):
            container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    clip = open_video(path)
    assert len(clip) == len(times) and (clip.width, clip.height) == (98, 62)
    sequential = [clip.frames[i] for i in range(len(clip))]
    assert sequential[0].shape == (62, 98, 3)
    assert [int(round(f.mean() / 20)) for f in sequential] == list(range(len(times)))
    assert np.array_equal(clip.frames[5], sequential[5]) and np.array_equal(clip.frames[1], sequential[1])


def test_written_video_reads_back_frame_for_frame(tmp_path):
    frames = [np.full((33, 47, 3), 30 * i, np.uint8) for i in range(6)]
    clip = open_video(write_video(tmp_path / "out.mp4", frames, fps=10))
    assert len(clip) == 6 and (clip.width, clip.height) == (48, 34)


def test_unreadable_video_and_empty_folder_are_named(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="broken.mp4"):
        open_video(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no frames"):
        open_video(tmp_path / "empty")


def test_frame_folder_in_natural_order(tmp_path):
    from PIL import Image
    for i in (1, 2, 10):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"f{i}.png")
    clip = open_video(tmp_path)
    assert clip.frame_names == ["f1", "f2", "f10"] and clip.frames[2][0, 0, 0] == 10


def test_clip_dataset_gives_key_frame_supports_and_targets():
    video = small_video(frames=5)
    data = ClipDataset([video], SupportConfig("local", 2, 1))
    assert len(data) == 5
    sample = data[0]
    assert sample.frame.shape == (3, 64, 80) and sample.support.shape == (2, 3, 64, 80)
    assert sample.support_index == [0, 1] and sample.targets is video.targets[0]
    long = small_video(frames=40)
    train = ClipDataset([long], SupportConfig("train_bilateral", 2), seed=3)
    first = [train[i].support_index for i in range(10, 30)]
    assert first == [ClipDataset([long], SupportConfig("train_bilateral", 2), seed=3)[i].support_index
                     for i in range(10, 30)]  # reproducible per (seed, epoch, sample)
    train.set_epoch(1)
    assert [train[i].support_index for i in range(10, 30)] != first  # a new draw each epoch


def test_clip_dataset_oversamples_named_key_frames():
    video = small_video(frames=6)
    data = ClipDataset([video], SupportConfig("local", 2, 1), key_stride=2)
    data.oversample({video.name: [1, 2, 4]}, times=3)  # frame 1 is not a key frame at stride 2
    assert sorted(data.items) == [(0, 0), (0, 2), (0, 2), (0, 2), (0, 4), (0, 4), (0, 4)]
    with pytest.raises(KeyError, match="'nope' is not in this dataset"):
        data.oversample({"nope": [0]}, times=2)
    with pytest.raises(ValueError, match="frame 6 is outside its 6 frames"):
        data.oversample({video.name: [6]}, times=2)


def test_cli_evaluates_vid_on_all_and_deteriorated_frames(tmp_path):
    root = tmp_path / "vid"
    assert main(["data", "synth", "--format", "vid", "--out", str(root), "--videos", "2", "--frames", "8",
                 "--size", "96x64", "--deteriorated", "0.4", "--seed", "2"]) == 0
    videos = read_vid(root, "val", progress=False)
    sidecar = json.loads((root / "deteriorated.json").read_text())
    bad = set(sidecar["vid_frame_indices"])
    # perfect on clean frames, nothing on deteriorated ones
    rows = [[g, label, 0.9, *box] for v in videos for g, tg in zip(v.meta["frame_indices"], v.targets)
            if g not in bad for box, label in zip(tg.boxes, tg.labels)]
    from stpn.data import write_vid_detections
    write_vid_detections(tmp_path / "dets.txt", np.array(rows))
    for subset, expected in ((None, None), (str(root / "deteriorated.json"), 0.0)):
        out = tmp_path / "m.json"
        argv = ["evaluate", "vid", "--gt", str(root), "--results", str(tmp_path / "dets.txt"), "--json", str(out),
                "--overwrite"]  # the second pass replaces the first one's metrics
        assert main(argv + (["--subset", subset] if subset else [])) == 0
        metrics = json.loads(out.read_text())
        assert set(metrics) >= {"ap50", "ap50_fast", "ap50_medium", "ap50_slow", "per_class"}
        if expected is None:
            assert 0.3 < metrics["ap50"] < 1.0
        else:
            assert metrics["ap50"] == expected


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    root = tmp_path / "vid"
    main(["data", "synth", "--format", "vid", "--out", str(root), "--videos", "1", "--frames", "3", "--size", "64x64"])
    (tmp_path / "dets.txt").write_text("1 1 0.5 0 0 9\n")
    assert main(["evaluate", "vid", "--gt", str(root), "--results", str(tmp_path / "dets.txt")]) == 2
    assert "dets.txt:1: expected 7 columns" in capsys.readouterr().err


def test_cli_writes_a_corrupted_copy(tmp_path):
    main(["data", "synth", "--format", "got10k", "--out", str(tmp_path / "g"), "--videos", "1", "--frames", "3",
          "--size", "64x48"])
    assert main(["data", "corrupt", "--format", "got10k", "--root", str(tmp_path / "g"), "--out", str(tmp_path / "c"),
                 "--kind", "defocus", "--severity", "5"]) == 0
    clean, blurred = read_got10k(tmp_path / "g", "val", progress=False)[0], read_got10k(tmp_path / "c", "val", progress=False)[0]
    assert np.allclose(clean.targets[1].boxes, blurred.targets[1].boxes)
    diff = np.abs(np.diff(blurred.frames[0].astype(float), axis=1)).mean()
    assert diff < np.abs(np.diff(clean.frames[0].astype(float), axis=1)).mean()


def test_det_images_read_as_one_frame_videos_keeping_the_vid_classes(tmp_path):
    from stpn.data.vid import VID_WNIDS, read_det
    write_det(tmp_path, {"ILSVRC2014_train_0000/a": [(VID_WNIDS[4], (3, 4, 20, 30)), ("n07739125", (1, 1, 9, 9))],
                         "ILSVRC2013_train/n02691156/b": [(VID_WNIDS[0], (10, 10, 63, 47))]})
    videos = read_det(tmp_path, "DET_train_30classes", progress=False)
    assert [v.name for v in videos] == ["DET/train/ILSVRC2014_train_0000/a", "DET/train/ILSVRC2013_train/n02691156/b"]
    a, b = videos
    assert len(a) == 1 and (a.width, a.height) == (64, 48) and a.frames[0].shape == (48, 64, 3)
    assert a.targets[0].labels.tolist() == [5] and a.targets[0].boxes.tolist() == [[3, 4, 20, 30]]
    assert a.meta["skipped_objects"] == 1  # the apple (n07739125) is not a VID class
    assert b.targets[0].labels.tolist() == [1] and b.meta["skipped_objects"] == 0
    # a one-frame video's supports are copies of its frame
    clip = ClipDataset(videos, SupportConfig("train_bilateral", 2, 1, 9))[0]
    assert clip.support_index == [0, 0] and all((s == clip.frame).all() for s in clip.support)


def test_det_list_and_annotation_problems_are_named(tmp_path):
    from stpn.data.vid import read_det
    with pytest.raises(FileNotFoundError, match="DET_train_30classes.txt"):
        read_det(tmp_path, progress=False)
    write_det(tmp_path, {"f/a": [("n02691156", (3, 4, 20, 30))]})
    (tmp_path / "Annotations" / "DET" / "train" / "f" / "a.xml").unlink()
    with pytest.raises(FileNotFoundError, match="annotation of DET image train/f/a is missing"):
        read_det(tmp_path, progress=False)
    (tmp_path / "ImageSets" / "DET_train_30classes.txt").write_text("train/f/a\n")
    with pytest.raises(AnnotationError, match="DET_train_30classes.txt:1: expected"):
        read_det(tmp_path, progress=False)
    write_det(tmp_path, {"f/a": [("n02691156", (3, 4, 90, 30))]})
    with pytest.raises(AnnotationError, match="a.xml: object 0: box .* lies outside"):
        read_det(tmp_path, progress=False)


def test_metric_files_are_valid_json_with_null_for_undefined_numbers(tmp_path):
    import json as jsonlib

    from stpn.data.types import write_json
    write_json(tmp_path / "m.json", {"ao": float("nan"), "fps": float("inf"), "per": [1.5, float("-inf")], "n": 3})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert jsonlib.loads(text) == {"ao": None, "fps": None, "per": [1.5, None], "n": 3}


def test_read_split_generates_and_reads_every_benchmark_layout(tmp_path):
    """The data layer serves every format a task may name (no task knows the layouts)."""
    from types import SimpleNamespace

    from stpn.data.splits import deteriorated_frames, read_split
    synth = {"videos": 2, "frames": 4, "width": 64, "height": 48, "classes": 2, "max_objects": 2}
    for fmt in ("vid", "got10k", "ytvis"):
        data = SimpleNamespace(root=str(tmp_path / fmt), format=fmt, synth=synth, train_split="train", val_split="val")
        for split in ("train", "val"):
            videos = read_split(data, split)
            assert len(videos) == 2 and all(len(v) == 4 for v in videos), (fmt, split)
            assert set(deteriorated_frames(data, split)) == {v.name for v in videos}
        if fmt == "ytvis":  # masks come with the layout
            assert any(tg.masks is not None and len(tg.masks) for v in videos for tg in v.targets)
        train, val = read_split(data, "train")[0], read_split(data, "val")[0]
        assert not np.array_equal(train.frames[0], val.frames[0]), fmt  # two splits, two seeds, two folders


def test_a_look_alike_has_the_targets_looks_another_pattern_and_circles_it():
    import dataclasses
    base = SynthConfig(videos=6, frames=12, width=128, height=96, classes=3, min_objects=2, max_objects=3, seed=3)
    alike = dataclasses.replace(base, look_alike=1.0)
    near = []
    for i in range(base.videos):
        (v0, chosen0, kinds0), (v1, chosen1, kinds1) = synth_video(base, i), synth_video(alike, i)
        assert chosen0 == chosen1 and kinds0 == kinds1  # its own random numbers: the rest of the video is kept
        for t in range(base.frames):
            a, b = v0.targets[t], v1.targets[t]
            assert np.array_equal(a.track_ids, b.track_ids) and np.array_equal(a.boxes[0], b.boxes[0])
            assert np.array_equal(a.boxes[2:], b.boxes[2:]) and np.array_equal(a.labels[2:], b.labels[2:])  # the others
            assert b.labels[1] != b.labels[0]  # another pattern
            if not b.extra["cut_by_image"][:2].any():
                (x1, y1, x2, y2), (u1, v1_, u2, v2) = b.boxes[0], b.boxes[1]
                assert np.allclose([x2 - x1, y2 - y1], [u2 - u1, v2 - v1_])  # the target's size
                side = np.sqrt((x2 - x1) * (y2 - y1))
                near.append(np.hypot((x1 + x2 - u1 - u2) / 2, (y1 + y2 - v1_ - v2) / 2) / side)
    assert sum(len(synth_video(base, i)[0].targets[0]) > 2 for i in range(base.videos)) >= 1  # a third object to check
    assert near and 0.35 - 1e-9 <= min(near) and max(near) <= 1.15 + 1e-9  # radius 0.5-1.0 of the side, +-0.15
    # the same colours: the look-alike's pixels in a clean first frame are the target's two colours
    v, _, _ = synth_video(alike, 0)
    from pycocotools import mask as mask_utils
    pixels = [np.unique(v.frames[0][mask_utils.decode(v.targets[0].masks[k]).astype(bool)], axis=0) for k in (0, 1)]
    assert {tuple(p) for p in pixels[1]} <= {tuple(p) for p in pixels[0]}
    with pytest.raises(ValueError, match="look_alike must be a probability"):
        SynthConfig(look_alike=1.5)
    with pytest.raises(ValueError, match="look_alike needs classes >= 2"):
        SynthConfig(look_alike=0.5, classes=1)


def test_a_far_look_alike_comes_close_only_around_deteriorated_runs():
    import dataclasses
    orbit = SynthConfig(videos=6, frames=16, width=160, height=120, classes=3, min_objects=2, max_objects=2, seed=5,
                        look_alike=1.0, deteriorated=0.3, run_length=(2, 3))
    far = dataclasses.replace(orbit, look_alike_far=2.0)
    checked = {"run": 0, "clean": 0, "between": 0}
    for i in range(orbit.videos):
        (v0, chosen0, kinds0), (v1, chosen1, kinds1) = synth_video(orbit, i), synth_video(far, i)
        assert chosen0 == chosen1 and kinds0 == kinds1
        for t in range(orbit.frames):
            a, b = v0.targets[t], v1.targets[t]
            assert np.array_equal(a.boxes[0], b.boxes[0]) and a.labels[1] == b.labels[1]  # target and look-alike kept
            if b.extra["cut_by_image"][:2].any():
                continue
            centre = lambda box: np.array([box[0] + box[2], box[1] + box[3]]) / 2  # noqa: E731
            (x1, y1, x2, y2) = b.boxes[0]
            side = np.sqrt((x2 - x1) * (y2 - y1))
            d_far, d_orbit = (np.linalg.norm(centre(tg.boxes[1]) - centre(tg.boxes[0])) / side for tg in (b, a))
            gap = min([abs(t - c) for c in chosen1] + [99])
            if gap == 0:  # within a run: on the orbit, as without look_alike_far
                assert d_far == pytest.approx(d_orbit, abs=1e-6)
                checked["run"] += 1
            elif gap >= 3:  # clean and away from runs: out at 2 sides (x 1.0: unclipped centres)
                assert d_far == pytest.approx(2.0, abs=1e-6)
                checked["clean"] += 1
            else:  # coming in or going out: 2/3 (1/3) of the way in one (two) frames from a run
                w = 1 - gap / 3
                assert d_far == pytest.approx(w * d_orbit + (1 - w) * 2.0, abs=1e-6)
                checked["between"] += 1
    assert min(checked.values()) >= 2, checked
    with pytest.raises(ValueError, match="look_alike_far must be 0"):
        SynthConfig(look_alike_far=0.5)


def test_corner_boxes_convert_to_xywh_as_torchvision_does():
    import torch
    from torchvision.ops import box_convert

    from stpn.data.types import xyxy_to_xywh
    boxes = np.array([[1.5, 2.0, 11.0, 4.5], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(xyxy_to_xywh(boxes), box_convert(torch.as_tensor(boxes), "xyxy", "xywh").numpy())
    assert xyxy_to_xywh(boxes[0]).tolist() == [1.5, 2.0, 9.5, 2.5]


def test_settings_differences_name_each_key_that_differs():
    from stpn.data.types import differences
    held = {"model": {"lr": 1, "kw": {"a": 1}}, "run": {"out": "x", "seed": 0}, "task": "det"}
    wanted = {"model": {"lr": 2, "kw": {"a": 3}}, "run": {"out": "y", "seed": 0}, "task": "det", "new": None}
    assert differences(held, wanted, {"run": ("out",)}) == ["model.kw.a: 1 there, 3 here", "model.lr: 1 there, 2 here"]
    assert differences(held, held) == []
