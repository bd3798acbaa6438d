"""Plain videos: a video file through PyAV, or a folder of frames. Decoded lazily.

A video file is demuxed once (no decoding) to learn each frame's timestamp, so frame i can be
reached by seeking even at a variable frame rate; reading in order decodes each frame once.
Audio and subtitle streams are ignored.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from .types import FrameSource, ImageFiles, Video, atomic_path, write_json

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".JPEG", ".JPG", ".PNG")


class VideoFile(FrameSource):
    def __init__(self, path: str | Path):
        import av

        self.path = Path(path)
        self._container = self._frames = self._next = None
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise ValueError(f"{self.path} has no video stream")
                stream = container.streams.video[0]
                self.width, self.height = stream.codec_context.width, stream.codec_context.height
                self.time_base = stream.time_base
                self.fps = float(stream.average_rate) if stream.average_rate else None
                pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
        except av.error.FFmpegError as err:
            raise ValueError(f"cannot read video {self.path}: {err}") from err
        self.pts = sorted(pts)
        if not self.pts:
            raise ValueError(f"{self.path}: the video stream holds no frames")

    def __len__(self) -> int:
        return len(self.pts)

    def _open_at(self, index: int):
        import av

        if self._container is None:
            self._container = av.open(str(self.path))
        stream = self._container.streams.video[0]
        self._container.seek(self.pts[index], stream=stream, backward=True, any_frame=False)
        self._frames = self._container.decode(stream)
        self._next = None

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} outside {self.path} ({len(self)} frames)")
        if self._next != index:
            self._open_at(index)
        target = self.pts[index]
        for frame in self._frames:
            if frame.pts is None or frame.pts < target:
                continue
            self._next = index + 1
            return frame.to_ndarray(format="rgb24")
        raise ValueError(f"{self.path}: frame {index} (pts {target}) could not be decoded")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __del__(self):
        self.close()


def _natural_key(path: Path):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def open_video(path: str | Path) -> Video:
    """A video file (mp4, mkv, avi, ...) or a folder of frames, as a ``Video`` without targets."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix in IMAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise FileNotFoundError(f"{path} holds no frames ({', '.join(IMAGE_SUFFIXES[:5])})")
        source = ImageFiles(files)
        h, w = source[0].shape[:2]
        return Video(path.name, source, w, h, frame_names=[f.stem for f in files])
    source = VideoFile(path)
    return Video(path.stem, source, source.width, source.height, meta={"fps": source.fps})


def write_video(path: str | Path, frames, fps: float = 25.0) -> Path:
    """Encode (H, W, 3) uint8 frames as H.264 (odd sizes are padded to even by one pixel)."""
    import av

    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w") as container:
            stream = None
            for frame in frames:
                if stream is None:
                    h, w = frame.shape[:2]
                    stream = container.add_stream("libx264", rate=int(round(fps)))
                    stream.width, stream.height = w + w % 2, h + h % 2
                    stream.pix_fmt = "yuv420p"
                if frame.shape[0] % 2 or frame.shape[1] % 2:
                    frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        if stream is None:  # nothing is renamed into place: the temporary file goes
            raise ValueError(f"no frame to write to {path}")
    return path


def write_annotated(frames, out: str | Path | None, fps: float = 25.0, source: str | None = None,
                    then=None, total: int | None = None) -> int:
    """Run an iterator of annotated frames into ``out`` (mp4) or, without ``out``, just run it.
    Ctrl-C stops the frames and keeps the video written so far, then raises KeyboardInterrupt
    again (the command exits 130). An error while producing a frame (a video that breaks
    mid-stream) also keeps the frames before it, then raises naming the frame and ``source``.
    ``then(status)`` runs at the end in every case (e.g. to write the per-frame results of the
    frames done) with ``status = {"complete": bool, "frames_done": n, "frames_total": total}``.
    Returns the frames done."""
    status = {"complete": False, "frames_done": 0, "frames_total": total}
    interrupted = False
    try:
        interrupted = _write_annotated(frames, out, fps, source, status)
        status["complete"] = not interrupted
        return status["frames_done"]
    finally:
        if then is not None:
            then(status)
        if interrupted:
            raise KeyboardInterrupt  # the frames done are kept; the command exits 130


def _write_annotated(frames, out, fps, source, status) -> bool:
    """Counts the frames done in ``status``; returns whether Ctrl-C stopped them."""
    error, interrupted = None, False

    def guarded():
        nonlocal error, interrupted
        try:
            for frame in frames:
                yield frame
                status["frames_done"] += 1
        except KeyboardInterrupt:
            interrupted = True
            print(f"interrupted after {status['frames_done']} frames; keeping what was done", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - reported below, after the video is closed
            error = err

    if out:
        try:
            write_video(out, guarded(), fps=fps)
            print(f"wrote {out} ({status['frames_done']} frames{', partial' if interrupted else ''})")
        except ValueError:
            if error is None and not interrupted:  # stopped before a frame: nothing to write, not an error
                raise
    else:
        for _ in guarded():
            pass
    done = status["frames_done"]
    if error is not None:
        kept = f"; kept the {done} frames before it in {out}" if out and done else ""
        raise ValueError(f"{source or 'input'}: stopped at frame {done} ({type(error).__name__}: {error}){kept}") from error
    return interrupted


def mark_partial(path: str | Path, status: dict) -> None:
    """Beside a result file whose format has no room for it, ``<name>.partial.json`` says the run
    stopped early (frames done of total); a complete run removes a stale one."""
    note = Path(path).with_name(Path(path).name + ".partial.json")
    if status["complete"]:
        note.unlink(missing_ok=True)
    else:
        write_json(note, status)


def partial_note(status: dict) -> str:
    """", partial: 49 of 400 frames" for an interrupted run, "" for a complete one."""
    if status["complete"]:
        return ""
    total = status["frames_total"]
    return f", partial: {status['frames_done']} of {total if total is not None else 'an unknown number of'} frames"


def open_source(source: str):
    """(Video or None, frame iterator, frame count or None, fps) for a file, folder or webcam."""
    if source.isdigit():
        import av
        try:
            container = av.open(f"/dev/video{source}", format="v4l2")
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"cannot open webcam {source} (/dev/video{source}): {err}") from None
        return None, (f.to_ndarray(format="rgb24") for f in container.decode(video=0)), None, 25.0
    video = open_video(source)
    return video, (video.frames[i] for i in range(len(video))), len(video), video.meta.get("fps") or 25.0
