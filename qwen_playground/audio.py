"""Sound for Qwen's audio models: safe uploads and recordings, made into what the models take.

A clip is checked by content, never by file name: its size in bytes, that it
decodes as audio (PyAV reads WAV, MP3, FLAC, Ogg/Opus, WebM, M4A...), its
length against the limit, that it is not empty or silent. It is then made
what every Qwen audio model's feature extractor takes: one channel (stereo is
mixed down) at 16 kHz (other rates are resampled), as float samples in
[-1, 1]. Each change is reported, as the Vision tab reports its images'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .vision import UploadRejected

SILENT_DBFS = -50.0  # a clip whose loudest sample is quieter than this holds nothing to hear
SLACK_S = 0.05  # a clip this much over the length limit passes (a recording stopped a moment late)


@dataclass(frozen=True)
class CheckedAudio:
    samples: np.ndarray  # mono float32 at `rate`
    rate: int
    name: str
    source_rate: int
    source_channels: int
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    @property
    def peak_dbfs(self) -> float:
        peak = float(np.max(np.abs(self.samples))) if len(self.samples) else 0.0
        return 20 * math.log10(peak) if peak > 0 else -math.inf


def describe_seconds(seconds: float) -> str:
    """'4.2 s' or '2 min 05 s'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def check_audio(path: str | Path, max_seconds: float, max_bytes: int, rate: int = 16000, name: str | None = None) -> CheckedAudio:
    """Decode an uploaded or recorded clip to mono float samples at `rate`, or raise UploadRejected saying why."""
    import av  # PyAV: the app's video reader decodes sound too

    path = Path(path)
    name = name or path.name
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(f"{name} is empty: nothing was recorded or uploaded. Record again, or choose another file.")
    if size > max_bytes:
        raise UploadRejected(f"{name} is {size / 2**20:.1f} MB; a clip may be at most {max_bytes / 2**20:.3g} MB.")
    too_long = (f"{name} is {{}} long; the limit is {describe_seconds(max_seconds)}. Trim it (or transcribe it in parts) and retry.")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UploadRejected(f"{name} has no sound in it (checked by content, not by name). Upload a WAV, MP3, FLAC, Ogg or M4A file.")
            stream = container.streams.audio[0]
            source_rate, channels = stream.rate or rate, stream.channels or 1
            declared = float(container.duration) / av.time_base if container.duration else None
            if declared is not None and declared > max_seconds + SLACK_S:
                raise UploadRejected(too_long.format(describe_seconds(declared)))
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, total = [], 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += out.samples
                if total > (max_seconds + SLACK_S) * rate:  # a container without a declared length: stop decoding once over
                    raise UploadRejected(too_long.format(f"over {describe_seconds(max_seconds)}"))
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except UploadRejected:
        raise
    except (av.FFmpegError, IndexError, ValueError, OSError) as e:
        raise UploadRejected(f"{name} is not audio this app can read, or is damaged ({type(e).__name__}). "
                             "Upload a WAV, MP3, FLAC, Ogg or M4A file.") from None
    samples = np.clip(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), -1.0, 1.0).astype(np.float32)
    clip = CheckedAudio(samples, rate, name, source_rate, channels)
    if clip.seconds > max_seconds + SLACK_S:
        raise UploadRejected(too_long.format(describe_seconds(clip.seconds)))
    if clip.seconds < 0.05:
        raise UploadRejected(f"{name} holds no sound ({clip.seconds * 1000:.0f} ms): record again, a little longer.")
    if clip.peak_dbfs < SILENT_DBFS:
        loudest = "digital silence" if clip.peak_dbfs == -math.inf else f"its loudest moment is {clip.peak_dbfs:.0f} dBFS"
        raise UploadRejected(f"{name} is silent ({loudest}). Check that the microphone is on and not muted, speak closer, and record again.")
    notes = []
    if channels > 1:
        notes.append(f"{channels} channels mixed down to one")
    if source_rate != rate:
        notes.append(f"resampled from {source_rate / 1000:g} kHz to {rate / 1000:g} kHz")
    return CheckedAudio(samples, rate, name, source_rate, channels, tuple(notes))
