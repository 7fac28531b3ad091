"""``ryll report FILE.zip`` (also ``ryll inspect``): a bug report, or a ``--capture``
directory, summarised for a person, so a maintainer reads it without unzipping: what kind of
report, when, against what, the gaps, the channels, why a channel dropped, the server's
notices, and the last messages of every channel by name (read back from the pcap).

The file is untrusted (someone sent it): members are size-checked before they are read, JSON
that is not what ryll writes is reported as such, and any problem is one line and exit 2.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, TextIO

from ryll.diagnostics.pcap_read import Conversation, read_conversations
from ryll.errors import ProtocolError, UsageError

# A report's members are at most a few tens of MiB (the traffic ring is 50 MiB in all).
MAX_MEMBER = 256 * 1024 * 1024
MAX_JSON = 32 * 1024 * 1024
LAST_MESSAGES = 8
LAST_NOTIFICATIONS = 10


class _Source:
    """A report zip or a capture directory, read member by member."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.names = sorted(p.name for p in path.iterdir() if p.is_file())
            return
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise UsageError(f"{path}: not a ryll report (a zip) or capture directory: "
                             f"{exc}") from None
        self.names = self.zip.namelist()

    def size(self, name: str) -> int:
        if self.zip is not None:
            return self.zip.getinfo(name).file_size
        return (self.path / name).stat().st_size

    def read(self, name: str, limit: int = MAX_MEMBER) -> bytes | None:
        if name not in self.names:
            return None
        if self.size(name) > limit:
            raise UsageError(f"{self.path}: {name} is {self.size(name)} bytes, over the "
                             f"{limit}-byte limit")
        try:
            if self.zip is not None:
                return self.zip.read(name)
            return (self.path / name).read_bytes()
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise UsageError(f"{self.path}: cannot read {name}: {exc}") from None

    def json(self, name: str) -> Any:
        data = self.read(name, MAX_JSON)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise UsageError(f"{self.path}: {name} is not JSON: {exc}") from None


def _target(meta: dict[str, Any]) -> str:
    target = meta.get("target")
    if not isinstance(target, dict):
        return "?"
    ports = [str(target.get("port") or "-")]
    if target.get("tls_port"):
        ports.append(f"tls {target['tls_port']}")
    return f"{target.get('host')} ({', '.join(ports)})"


def _last_messages(convs: list[Conversation], out: TextIO) -> None:
    print(f"last messages (of {LAST_MESSAGES} at most per connection, from the pcap):",
          file=out)
    for conv in convs:
        where = f"{conv.name}:{conv.channel_id}"
        if conv.link_error is not None:
            print(f"  {where}: the link failed (error {conv.link_error})", file=out)
            continue
        problem = f" ({conv.problem})" if conv.problem else ""
        print(f"  {where}: {len(conv.messages)} messages{problem}", file=out)
        for message, name in conv.message_names()[-LAST_MESSAGES:]:
            arrow = "->" if message.sent else "<-"
            print(f"    {message.at:10.3f}s {arrow} {name} ({message.size} bytes)", file=out)


def inspect(path: Path, out: TextIO) -> None:
    """Print the summary of the report or capture at ``path``."""
    source = _Source(path)
    meta = source.json("metadata.json")
    if not isinstance(meta, dict):
        raise UsageError(f"{path}: no metadata.json: not a ryll report or capture")
    kind = meta.get("report_type") or ("capture" if source.zip is None else "?")
    print(f"{path.name}: {kind} report" if kind != "capture" else f"{path}: capture", file=out)
    print(f"  ryll {meta.get('ryll_version')} on {meta.get('platform')}", file=out)
    print(f"  target: {_target(meta)}", file=out)
    when = meta.get("timestamp") or meta.get("start_time")
    uptime = meta.get("session_uptime_secs")
    print(f"  written: {when}" + (f" ({uptime} s into the session)" if uptime else ""),
          file=out)
    for key in ("channel", "description", "gap_key", "gap_detail"):
        if meta.get(key):
            print(f"  {key.replace('_', ' ')}: {meta[key]}", file=out)
    if isinstance(meta.get("region"), dict):
        r = meta["region"]
        print(f"  region: display {r.get('display')} {r.get('width')}x{r.get('height')} at "
              f"{r.get('x')},{r.get('y')}", file=out)
    cause = source.json("disconnect-cause.json")
    if isinstance(cause, dict):
        print(f"  disconnect: {cause.get('channel')}: {cause.get('reason')}", file=out)
    session = source.json("session.json")
    if isinstance(session, dict):
        gaps = session.get("gaps") or {}
        print(f"gaps: {len(gaps)}", file=out)
        for key, count in gaps.items() if isinstance(gaps, dict) else ():
            print(f"  {key} x{count}", file=out)
        channels = session.get("channels") or []
        print(f"channels: {len(channels)}", file=out)
        for c in channels if isinstance(channels, list) else ():
            if isinstance(c, dict):
                print(f"  {c.get('name')}:{c.get('id')}{' (TLS)' if c.get('tls') else ''}: "
                      f"in {c.get('messages_in')} messages / {c.get('bytes_in')} B, out "
                      f"{c.get('messages_out')} / {c.get('bytes_out')} B", file=out)
    elif isinstance(meta.get("channels"), list):
        print(f"channels: {len(meta['channels'])}", file=out)
        for c in meta["channels"]:
            if isinstance(c, dict):
                print(f"  {c.get('name')}:{c.get('id')} ({c.get('pcap')})", file=out)
    notes = source.json("notifications.json")
    if isinstance(notes, list) and notes:
        print(f"notifications (last {min(len(notes), LAST_NOTIFICATIONS)} of {len(notes)}):",
              file=out)
        for note in notes[-LAST_NOTIFICATIONS:]:
            if isinstance(note, dict):
                detail = note.get("text") or note.get("reason") or note.get("key") or ""
                where = note.get("channel") or note.get("name") or ""
                print(f"  {note.get('uptime_s'):>9}s {note.get('kind')} {where} {detail}"
                      .rstrip(), file=out)
    convs: list[Conversation] = []
    for name in source.names:
        if name.endswith(".pcap"):
            if source.size(name) > MAX_MEMBER:
                print(f"{name}: {source.size(name)} bytes, over the {MAX_MEMBER}-byte limit "
                      "of this summary: not read", file=out)
                continue
            data = source.read(name)
            assert data is not None
            try:
                convs += read_conversations(data)
            except ProtocolError as exc:
                print(f"{name}: unreadable: {exc}", file=out)
    if convs:
        _last_messages(convs, out)
    print("files:", file=out)
    for name in source.names:
        print(f"  {name} ({source.size(name)} bytes)", file=out)
