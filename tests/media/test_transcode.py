"""Probe and renditions on small real clips of what phones send: each comes out as
what its platform takes (H.264 High, yuv420p, AAC-LC, the box, the frame rate, moov
first), turned upright, cut where asked, with captions drawn in; a cancelled rendition
leaves no file; a poster is upright."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from services.common.media.probe import Undecodable, probe
from services.common.media.profiles import MASTODON, Cut, Profile, X, recipe, refusals
from services.media.transcode import Cancelled, poster, render
from tests.helpers.media import make_clip, truncate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_the_probe_reads_what_phones_send(phone_videos: dict[str, Path]) -> None:
    iphone = probe(phone_videos["hevc_mov"])
    assert (iphone.video_codec, iphone.rotation, iphone.fps) == ("hevc", -90, 60.0)
    assert iphone.display_size == (108, 192)
    assert iphone.portrait
    webm = probe(phone_videos["vp8_webm"])
    assert (webm.container, webm.video_codec, webm.audio_codec) == ("matroska,webm", "vp8", "opus")
    old = probe(phone_videos["h264_3gp"])
    assert (old.video_codec, old.audio_codec, old.audio_rate) == ("h264", "amrnb", 8000)


def test_a_file_cut_short_does_not_pass_the_probe(
    phone_videos: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(Undecodable, match="cannot be decoded"):
        probe(phone_videos["truncated_mp4"])  # moov at the end: lost
    faststart = make_clip(tmp_path / "fs.mp4", seconds=3.0, faststart=True)
    cut = truncate(faststart, tmp_path / "fs-cut.mp4", 0.6)
    with pytest.raises(Undecodable, match=r"incomplete: it announces 3\.0 s"):
        probe(cut)  # opens fine, its data stops early
    with pytest.raises(Undecodable):
        probe(Path(__file__))


@pytest.mark.parametrize("clip", ["hevc_mov", "vp8_webm", "h264_3gp", "h264_mp4"])
@pytest.mark.parametrize("profile", [X, MASTODON], ids=["x", "mastodon"])
def test_every_phone_format_becomes_what_the_platform_takes(
    clip: str, profile: Profile, phone_videos: dict[str, Path], tmp_path: Path
) -> None:
    source = probe(phone_videos[clip])
    made = recipe(source, profile)
    out = render(phone_videos[clip], tmp_path / "out.mp4", made)
    result = probe(out.path)
    assert refusals(result, profile) == []
    assert (result.video_codec, result.video_profile, result.pix_fmt) == ("h264", "High", "yuv420p")
    assert result.audio_codec == "aac"
    assert result.faststart is True
    assert result.rotation == 0
    assert result.display_size == source.display_size  # small: never upscaled; upright
    assert result.fps == min(source.fps or 30, 30)
    assert result.duration_s == pytest.approx(source.duration_s, abs=0.15)
    assert list(tmp_path.glob(".*.part")) == []


def test_ffprobe_agrees(phone_videos: dict[str, Path], tmp_path: Path) -> None:
    """Debian's ffprobe, not our own probe, reads the rendition (make system-deps)."""
    ffprobe = shutil.which("ffprobe")
    assert ffprobe is not None, "ffprobe is missing: make system-deps installs ffmpeg"
    out = render(
        phone_videos["hevc_mov"],
        tmp_path / "x.mp4",
        recipe(probe(phone_videos["hevc_mov"]), X),
    ).path
    shown = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries",
         "stream=codec_name,profile,pix_fmt,width,height:stream_side_data=rotation",
         "-of", "compact=p=0:nk=1", str(out)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert shown[0] == "h264|High|108|192|yuv420p"
    assert shown[1].startswith("aac|LC")


def test_a_4k_answer_is_scaled_into_the_box(tmp_path: Path) -> None:
    uhd = make_clip(tmp_path / "4k.mp4", size=(3840, 2160), fps=5, seconds=0.6,
                    vopts={"preset": "ultrafast"})  # fmt: skip
    made = recipe(probe(uhd), X)
    assert (made.width, made.height) == (1920, 1080)
    result = probe(render(uhd, tmp_path / "out.mp4", made).path)
    assert (result.width, result.height) == (1920, 1080)
    assert refusals(result, X) == []


def _frame(path: Path, at_s: float) -> np.ndarray:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_s:
                return frame.to_ndarray(format="gray")
    raise AssertionError("no frame")


def test_the_cut_and_the_captions_are_in_the_rendition(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "s.mp4", size=(320, 240), fps=10, seconds=3.0)
    info = probe(source)
    plain = render(source, tmp_path / "plain.mp4", recipe(info, X, cut=Cut(1.0, 2.5)))
    captioned = render(
        source,
        tmp_path / "captioned.mp4",
        recipe(info, X, cut=Cut(1.0, 2.5), burn=[(1.0, 2.0, "We need clean water.")]),
    )
    assert probe(plain.path).duration_s == pytest.approx(1.5, abs=0.15)
    bottom = slice(150, 240)
    with_text = _frame(captioned.path, 0.5)[bottom].astype(int)
    without = _frame(plain.path, 0.5)[bottom].astype(int)
    assert np.abs(with_text - without).mean() > 3  # the caption is drawn
    late_with = _frame(captioned.path, 1.2)[bottom].astype(int)
    late_without = _frame(plain.path, 1.2)[bottom].astype(int)
    assert np.abs(late_with - late_without).mean() < 1.5  # and gone after its cue


def test_a_cancelled_rendition_leaves_no_file(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "s.mp4", size=(160, 120), fps=30, seconds=2.0)
    target = tmp_path / "out" / "r.mp4"
    with pytest.raises(Cancelled):
        render(source, target, recipe(probe(source), X), cancelled=lambda: True)
    assert list(target.parent.iterdir()) == []


def test_the_poster_is_upright(phone_videos: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image  # noqa: PLC0415

    path = poster(phone_videos["hevc_mov"], tmp_path / "p.jpg")
    with Image.open(path) as image:
        assert image.size == (108, 192)


def _sound_onset(path: Path) -> float:
    """When the sound in ``path`` starts (s): its first sample louder than a whisper."""
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()).max(axis=0) > 0.05)
            if loud.size:
                assert frame.time is not None
                return float(frame.time + loud[0] / frame.sample_rate)
    raise AssertionError("no sound")


def test_sound_that_starts_after_the_picture_stays_in_sync(tmp_path: Path) -> None:
    """A phone's audio track may start later than its video (here 1 s): the rendition
    keeps the sound where it was, not pulled to the first frame."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None, "ffmpeg is missing: make system-deps installs it"
    source = make_clip(tmp_path / "s.mp4", size=(160, 120), fps=10, seconds=3.0)
    late = tmp_path / "late.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(source), "-itsoffset", "1.0", "-i", str(source),
         "-map", "0:v", "-map", "1:a", "-c", "copy", "-t", "3", str(late)],
        check=True,
    )  # fmt: skip
    assert _sound_onset(late) == pytest.approx(1.0, abs=0.05)
    out = render(late, tmp_path / "out.mp4", recipe(probe(late), X)).path
    assert _sound_onset(out) == pytest.approx(1.0, abs=0.05)
    cut = render(late, tmp_path / "cut.mp4", recipe(probe(late), X, cut=Cut(0.5, 2.5))).path
    assert _sound_onset(cut) == pytest.approx(0.5, abs=0.05)


def test_a_picture_larger_than_any_phone_records_is_refused_before_it_decodes(
    tmp_path: Path,
) -> None:
    """A decompression bomb: a few hundred kB of flat H.264 that says 16000x16000 took
    1.5 GB to probe and 4.3 GB to make a poster of. Past 8K (7680x4320 pixels, 8192 a
    side) the probe refuses it from its header, before a frame is decoded."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None, "ffmpeg is missing: make system-deps installs it"
    big, tall = tmp_path / "big.mp4", tmp_path / "tall.mp4"
    for path, size in ((big, "7696x4336"), (tall, "8200x16")):
        subprocess.run(
            [ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"color=gray:size={size}:rate=1",
             "-frames:v", "1", "-c:v", "libx264", "-preset", "ultrafast", str(path)],
            check=True,
        )  # fmt: skip
    with pytest.raises(Undecodable, match=r"7696x4336: larger than"):
        probe(big)
    with pytest.raises(Undecodable, match=r"8200x16: larger than"):
        probe(tall, thorough=False)
    eight_k = make_clip(tmp_path / "8k.mp4", size=(4320, 7680), fps=1, seconds=1.0,
                        acodec=None, vopts={"preset": "ultrafast"})  # fmt: skip
    assert probe(eight_k, thorough=False).display_size == (4320, 7680)


def _hlg_clip(path: Path, luma: int, seconds: float = 1.0) -> Path:
    """A flat grey in HLG, BT.2020, 10-bit HEVC (what an iPhone records by default):
    ``luma`` a 10-bit limited-range code (721: HLG's reference white)."""
    fps = 10
    with av.open(str(path), "w") as out:
        vs = out.add_stream(
            "libx265", rate=fps, options={"preset": "ultrafast", "x265-params": "log-level=error"}
        )
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p10le"
        context = vs.codec_context
        context.color_primaries, context.color_trc, context.colorspace = 9, 18, 9
        for n in range(round(seconds * fps)):
            frame = av.VideoFrame(160, 120, "yuv420p10le")
            for i, plane in enumerate(frame.planes):
                value = luma if i == 0 else 512
                rows = np.full((plane.height, plane.line_size // 2), value, dtype=np.uint16)
                plane.update(rows.tobytes())
            frame.color_primaries, frame.color_trc, frame.colorspace = 9, 18, 9
            frame.pts = n
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def test_an_hdr_answer_is_tone_mapped_to_sdr(tmp_path: Path) -> None:
    """HLG's reference white is SDR's white once shown as SDR: the rendition and the
    poster tone-map it (they kept the code values, 8 bits, tagged HLG: a dim, washed-out
    grey, 179 of 235, once a platform reads it as SDR), and the rendition says BT.709."""
    clip = _hlg_clip(tmp_path / "hlg.mp4", luma=721)
    out = render(clip, tmp_path / "out.mp4", recipe(probe(clip), X)).path
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        tags = (stream.codec_context.color_primaries, stream.codec_context.color_trc)
        frame = next(container.decode(stream))
        luma = float(frame.to_ndarray()[: frame.height].mean())
    assert tags == (1, 1)
    assert luma == pytest.approx(234, abs=6)
    still = poster(clip, tmp_path / "poster.jpg", at_s=0.0)
    from PIL import Image  # noqa: PLC0415 - as the poster does

    with Image.open(still) as image:
        assert float(np.asarray(image.convert("L")).mean()) > 240
