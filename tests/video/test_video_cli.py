"""``--video-codecs``: names to SpiceVideoCodecTypes, and usage errors (exit 2) otherwise."""

from __future__ import annotations

import pytest

from ryll.cli.main import main, parse_video_codecs
from ryll.errors import UsageError


def test_names_in_order_once_each() -> None:
    assert parse_video_codecs("h264,vp8,mjpeg") == (3, 2, 1)
    assert parse_video_codecs(" VP9 , h265,vp9 ") == (4, 5)


@pytest.mark.parametrize("text", ["foo", "h264,av1", ",", ""])
def test_unknown_or_empty_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_video_codecs(text)
    assert "mjpeg, vp8, h264, vp9, h265" in str(info.value)


def test_cli_exits_2_listing_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--direct", "127.0.0.1:1", "--headless", "--video-codecs", "h264,foo"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown codec 'foo'" in err and "valid: mjpeg, vp8, h264, vp9, h265" in err
