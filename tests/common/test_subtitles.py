"""Timed subtitles: from speech segments, retimed after an edit, cut with the video,
read from a team's WebVTT or SRT, written back out."""

from __future__ import annotations

import pytest

from services.common.media import subtitles
from services.common.media.subtitles import Cue


def test_long_segments_become_readable_cues() -> None:
    segment = (0.0, 12.0, "word " * 40)
    cues = subtitles.from_segments([segment, (12.0, 13.0, "  Thank   you. ")])
    assert all(len(c.text) <= subtitles.MAX_CHARS for c in cues)
    assert cues[0].start == 0.0
    assert cues[-2].end == pytest.approx(12.0)
    assert cues[-1] == Cue(12.0, 13.0, "Thank you.")


def test_an_edit_is_timed_over_the_speech_it_replaces() -> None:
    before = [Cue(1.0, 2.0, "My name is Abina."), Cue(2.0, 4.0, "We need water.")]
    after = subtitles.retime("My name is Amina. We need clean water.", before, 30.0)
    assert after[0].start == 1.0
    assert after[-1].end == pytest.approx(4.0)
    assert subtitles.text_of(after) == "My name is Amina. We need clean water."
    assert subtitles.retime("Hello.", [], 8.0) == [Cue(0.0, 8.0, "Hello.")]


def test_cues_follow_the_cut() -> None:
    cues = [Cue(0.0, 2.0, "a"), Cue(2.0, 5.0, "b"), Cue(9.0, 10.0, "c")]
    assert subtitles.cut(cues, 1.0, 8.0) == [Cue(0.0, 1.0, "a"), Cue(1.0, 4.0, "b")]


def test_vtt_and_srt_round_trip() -> None:
    vtt = "WEBVTT\n\nNOTE x\n\n1\n00:00:01.000 --> 00:00:02.500 line:90%\n<i>Hello</i>\nthere\n"
    [cue] = subtitles.parse(vtt)
    assert cue == Cue(1.0, 2.5, "Hello\nthere")
    assert subtitles.parse(subtitles.to_srt([cue])) == [cue]
    assert subtitles.parse(subtitles.to_vtt([cue])) == [cue]
    assert "00:00:01,000 --> 00:00:02,500" in subtitles.to_srt([cue])


@pytest.mark.parametrize("text", ["", "just words", "00:00:01.000 --> soon\nHi\n"])
def test_a_file_that_is_not_subtitles_is_refused(text: str) -> None:
    with pytest.raises(subtitles.SubtitleError):
        subtitles.parse(text)


def test_short_cues_stay_on_screen_long_enough_to_read() -> None:
    cues = subtitles.min_length([Cue(0.0, 0.2, "a"), Cue(0.5, 0.6, "b")])
    assert cues == [Cue(0.0, 0.5, "a"), Cue(0.5, 1.3, "b")]


def test_webvtt_character_references_are_read_and_written() -> None:
    """WebVTT escapes ``&``, ``<`` and ``>`` in cue text (``&amp;`` …): a team's file says
    ``Tom &amp; Jerry`` for "Tom & Jerry", and a written cue must not open a tag with
    ``<`` nor hold ``-->`` (a line with it starts a new cue)."""
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nTom &amp; Jerry &lt;3 &gt; &#x627;&nbsp;!\n"
    [cue] = subtitles.parse(vtt)
    assert cue.text == "Tom & Jerry <3 > \u0627\u00a0!"
    said = Cue(0.0, 1.0, "prices --> up & <b>down</b> مرحبا")
    written = subtitles.to_vtt([said])
    assert "-->" not in written.split("\n")[3]
    assert "<b>" not in written
    assert subtitles.parse(written) == [said]
