"""Server-sent events: bytes already decoded to text in, each event's data out."""

from __future__ import annotations


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder: text in, each event's data out.

    Events end at a blank line; ``data:`` lines of one event are joined with
    newlines; comments (``:``) and other fields are dropped; CRLF and CR line
    ends are accepted, even when a CRLF is split across two reads.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, chunk: str) -> list[str]:
        buf = self._buf + chunk if self._buf else chunk
        tail = ""
        if "\r" in buf:
            if buf.endswith("\r"):
                buf, tail = buf[:-1], "\r"
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        events = buf.split("\n\n")
        self._buf = events.pop() + tail
        out = []
        for event in events:
            if event.startswith("data: ") and "\n" not in event:  # the common one-line event
                out.append(event[6:])
            elif (data := _event_data(event)) is not None:
                out.append(data)
        return out

    def flush(self) -> list[str]:
        """The last event of a stream that ended without a blank line."""
        rest, self._buf = self._buf.replace("\r", "\n").strip("\n"), ""
        data = _event_data(rest) if rest else None
        return [data] if data is not None else []


def _event_data(event: str) -> str | None:
    lines = [line[5:] for line in event.split("\n") if line.startswith("data:")]
    if not lines:
        return None
    return "\n".join(line[1:] if line.startswith(" ") else line for line in lines)


__all__ = ["SSEDecoder"]
