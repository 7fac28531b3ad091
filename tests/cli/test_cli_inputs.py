"""--paste-text, --paste-char-delay-ms, --cadence, --latency-file: argument checks."""

from __future__ import annotations

import pytest

from ryll.cli.main import build_parser, main


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--paste-text", "caf\u00e9"], "U+00E9"),
        (["--paste-text", "x" * 4097], "4096"),
        (["--paste-text", "ok", "--paste-char-delay-ms", "-1"], "--paste-char-delay-ms"),
        (["--paste-char-delay-ms", "soon"], "--paste-char-delay-ms"),
    ],
)
def test_bad_paste_arguments_are_usage_errors(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--direct", "127.0.0.1:1", "--headless", *argv])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("ryll: error: ") and needle in err[0], err


def test_defaults_and_names_match_the_rust_ryll() -> None:
    args = build_parser().parse_args(["--direct", "h:1", "--paste-text", "a", "--cadence",
                                      "--latency-file", "lat.csv"])
    assert args.paste_text == "a" and args.paste_char_delay_ms == 16
    assert args.cadence is True and str(args.latency_file) == "lat.csv"
