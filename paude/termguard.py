"""The filter between the agent's tmux and the user's terminal (`paude connect`, `start`).

The tmux client that draws the agent's session runs inside the agent's container, and its
server's options belong to the agent: `set-clipboard on` forwards an application's OSC 52
(write the user's clipboard), `allow-passthrough on` forwards DCS `tmux;` payloads (any
raw sequence, to the terminal or to a host tmux around it). The agent can set both at any
moment, after the user has attached, so no option paude sets inside can hold. What reaches
the terminal is therefore cut on the host, here.

This is a stream filter, not a terminal emulator: it recognises where escape sequences
begin and end (ECMA-48), passes text, C0 controls and ordinary sequences through, and
drops the few kinds that act outside the screen. It only ever emits whole sequences it
parsed, so a dropped sequence cannot splice its neighbours into a new one (a lone ESC is
never written), and a sequence split across reads is decided when its end arrives.

Dropped: every OSC except window titles and colours (so OSC 52 clipboard, OSC 8 links,
OSC 1337 file transfer, notifications); every DCS (tmux passthrough, sixel, terminal
queries), APC (kitty graphics), PM and SOS string; CSI `t` (window moves, resizes,
reports) and CSI `i` (media copy); C1 controls, raw or UTF-8 encoded (U+0080-U+009F)."""

from __future__ import annotations

from dataclasses import dataclass

from paude import proc

ESC, BEL, CAN, SUB = 0x1B, 0x07, 0x18, 0x1A
# OSC numbers that only change the window's title or the palette (4, 10-19, 104, 110-119).
SAFE_OSC = frozenset({0, 1, 2, 4, 104, *range(10, 20), *range(110, 120)})
DROPPED_CSI_FINALS = frozenset(b"ti")
STRING_STARTS = frozenset(b"PX^_")  # DCS, SOS, PM, APC: always dropped
MAX_OSC = 4096  # a longer title or colour is not one: the whole OSC goes
MAX_CSI = 256

# Parser states.
GROUND, ESCAPE, ESC_INTER, CSI, OSC, OSC_ESC, STRING, STRING_ESC = range(8)


class TerminalGuard:
    """Feed it the bytes for the terminal, write what it returns; state carries over reads."""

    def __init__(self) -> None:
        self.state = GROUND
        self.pending = bytearray()  # the sequence being parsed (or a held UTF-8 lead byte)
        self.utf8_left = 0  # continuation bytes still expected in ground
        self.held_c2 = False
        self.bel_ends = False  # the string being dropped is an OSC: BEL ends it too
        self.dropped = 0  # sequences dropped so far (for the log)

    def feed(self, data: bytes) -> bytes:
        """Filter one read's worth of output."""
        out = bytearray()
        for byte in data:
            self._byte(byte, out)
        return bytes(out)

    def flush(self) -> bytes:
        """The end of the stream: an unfinished sequence is dropped, never half-written."""
        lead = b"\xc2" if self.state == GROUND and self.held_c2 else b""
        self.state, self.held_c2, self.utf8_left = GROUND, False, 0
        self.pending.clear()
        return lead

    # ------------------------------------------------------------ the state machine

    def _byte(self, b: int, out: bytearray) -> None:
        state = self.state
        if state == GROUND:
            self._ground(b, out)
        elif state == ESCAPE:
            self._escape(b, out)
        elif state == ESC_INTER:
            self._esc_inter(b, out)
        elif state == CSI:
            self._csi(b, out)
        elif state in (OSC, OSC_ESC):
            self._osc(b, out)
        else:
            self._string(b, out)

    def _ground(self, b: int, out: bytearray) -> None:
        if self.held_c2:
            self.held_c2 = False
            if 0x80 <= b <= 0x9F:  # U+0080-U+009F: a C1 control in UTF-8
                self.dropped += 1
                return
            out.append(0xC2)
            if 0xA0 <= b <= 0xBF:
                out.append(b)
                return
        if b == ESC:
            self.utf8_left = 0
            self._begin(ESCAPE, b)
        elif b < 0x80:
            self.utf8_left = 0
            out.append(b)
        elif b <= 0xBF:  # a continuation byte
            if self.utf8_left:
                self.utf8_left -= 1
                out.append(b)
            elif b >= 0xA0:
                out.append(b)  # stray, but printable in any 8-bit reading
            else:
                self.dropped += 1  # a raw C1 control
        elif b == 0xC2:
            self.held_c2 = True
            self.utf8_left = 0
        else:
            self.utf8_left = 1 if b < 0xE0 else 2 if b < 0xF0 else 3 if b < 0xF5 else 0
            out.append(b)

    def _begin(self, state: int, b: int) -> None:
        self.state = state
        self.pending = bytearray([b])

    def _escape(self, b: int, out: bytearray) -> None:
        if b == ord("]"):
            self.state = OSC
            self.pending.append(b)
        elif b == ord("["):
            self.state = CSI
            self.pending.append(b)
        elif b in STRING_STARTS:
            self.dropped += 1
            self._skip_string(bel_ends=False)
        elif 0x20 <= b <= 0x2F:
            self.state = ESC_INTER
            self.pending.append(b)
        elif b == ord("\\"):
            self._ground_again()  # a string terminator with no string: nothing to do
        elif 0x30 <= b <= 0x7E:
            out += self.pending
            out.append(b)
            self._ground_again()
        else:
            # ESC ESC restarts; ESC before a C0 or a high byte is cancelled (terminals
            # do the same). Either way the lone ESC is not written.
            self._ground_again()
            self._ground(b, out)

    def _esc_inter(self, b: int, out: bytearray) -> None:
        if 0x20 <= b <= 0x2F and len(self.pending) < 8:
            self.pending.append(b)
        elif 0x30 <= b <= 0x7E:
            out += self.pending
            out.append(b)
            self._ground_again()
        else:
            self._ground_again()
            self._ground(b, out)

    def _csi(self, b: int, out: bytearray) -> None:
        if 0x40 <= b <= 0x7E:  # the final byte
            if b in DROPPED_CSI_FINALS:
                self.dropped += 1
            else:
                out += self.pending
                out.append(b)
            self._ground_again()
        elif 0x20 <= b <= 0x3F:
            self.pending.append(b)
            if len(self.pending) > MAX_CSI:
                self.dropped += 1
                self._ground_again()  # its remaining bytes print as text: harmless
        elif b in (CAN, SUB) or b >= 0x80:
            self.dropped += 1
            self._ground_again()
        elif b == ESC:
            self.dropped += 1
            self._begin(ESCAPE, b)
        else:
            out.append(b)  # a C0 control inside a CSI acts at once, in order

    def _osc(self, b: int, out: bytearray) -> None:
        if self.state == OSC_ESC:
            if b == ord("\\"):
                self._end_osc(out, b"\x1b\\")
                return
            self.dropped += 1  # ESC ends the string; the ESC starts what follows
            self._begin(ESCAPE, ESC)
            self._escape(b, out)
            return
        if b == BEL:
            self._end_osc(out, b"\x07")
        elif b == 0x9C and self.pending[-1] == 0xC2:  # ST as a UTF-8 C1 control
            self.pending.pop()
            self._end_osc(out, b"\x1b\\")
        elif b == ESC:
            self.state = OSC_ESC
        elif b in (CAN, SUB):
            self.dropped += 1
            self._ground_again()
        else:
            self.pending.append(b)
            if len(self.pending) > MAX_OSC:
                # Too long for a title or a colour: drop it, and everything up to its end.
                self.dropped += 1
                self._skip_string(bel_ends=True)

    def _end_osc(self, out: bytearray, terminator: bytes) -> None:
        body = bytes(self.pending[2:])
        number, _, _ = body.partition(b";")
        if number.isdigit() and int(number) in SAFE_OSC and _plain_text(body):
            out += self.pending
            out += terminator
        else:
            self.dropped += 1
        self._ground_again()

    def _string(self, b: int, out: bytearray) -> None:
        if self.state == STRING_ESC:
            self._ground_again()
            if b != ord("\\"):
                self._begin(ESCAPE, ESC)
                self._escape(b, out)
            return
        if b == ESC:
            self.state = STRING_ESC
        elif b in (CAN, SUB) or (b == BEL and self.bel_ends) or (
                b == 0x9C and self.pending[-1:] == b"\xc2"):
            self._ground_again()
        else:
            # The string's body goes; only its last byte is kept, for a UTF-8 ST.
            self.pending[:] = bytes([b])

    def _skip_string(self, *, bel_ends: bool) -> None:
        self.state = STRING
        self.bel_ends = bel_ends
        self.pending.clear()

    def _ground_again(self) -> None:
        self.state = GROUND
        self.pending.clear()


def _plain_text(body: bytes) -> bool:
    """Valid UTF-8 with no control characters: a terminal that reads raw C1 bytes inside a
    string (0x9C ends it, 0x9D starts an OSC) must find none in what passes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


@dataclass(frozen=True)
class Attached:
    """How an attach ended."""

    exit_code: int
    dropped: int  # escape sequences kept off the user's terminal


def attach(argv: list[str]) -> Attached:
    """Run an attach command (podman exec -it ... tmux attach, oc exec ...) on a terminal
    of paude's own, passing what it draws to the user's terminal through TerminalGuard."""
    guard = TerminalGuard()
    code = proc.run_on_pty(argv, guard)
    return Attached(code, guard.dropped)
