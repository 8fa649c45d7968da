"""What paude prints: text the agent wrote never reaches the terminal as a sequence."""

from __future__ import annotations

import pytest

from paude.cli import output


@pytest.mark.parametrize("printer", [output.text, output.info, output.warn, output.error])
def test_control_sequences_are_shown_escaped(printer: object,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # A build step's output, or a Dockerfile word, carrying a clipboard write (OSC 52), a
    # colour, a C1 CSI and a carriage return that would draw over the line.
    printer("step failed: \x1b]52;c;cHduZWQ=\x07 \x1b[8mhidden\x9b2J\rfake line")  # type: ignore[operator]
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert not any(c in shown for c in "\x1b\x07\x9b\r")
    assert "\\x1b]52;c;cHduZWQ=\\x07 \\x1b[8mhidden\\x9b2J\\x0dfake line" in shown


def test_ordinary_text_is_printed_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    # Control: newlines, brackets, non-ASCII letters and symbols pass unchanged.
    output.text("plan [demo]:\n  ~ image rebuilt ✓ é")
    assert capsys.readouterr().out == "plan [demo]:\n  ~ image rebuilt ✓ é\n"
