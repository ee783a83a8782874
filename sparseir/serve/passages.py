"""Passage text by document id, read by byte offset from an ``id<TAB>text`` collection
(collection.tsv, or .tsv.gz) without holding the collection in memory.

``scan`` (or the first lookup) reads the file once into a table of (id hash, line offset),
16 bytes a line, sorted by hash; a lookup reads its line at the offset and checks the id there (so a
hash collision costs a second read, never a wrong passage). A gzip file cannot be read from
an offset, so the scan also keeps a checkpoint of the inflater every ``GZIP_SPACING``
bytes of text (its 32 KiB window and state: about 40 KiB each); a lookup resumes from
the checkpoint before its line and inflates at most that many bytes. Multi-member gzip files
(bgzip, concatenated parts) read as one stream. Lines that are not ``id<TAB>text`` have no
passage; of a repeated id, the first line is its passage.
"""

from __future__ import annotations

import threading
import zlib
from array import array
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from ..errors import InputError
from ..fileio import is_gzip

GZIP_SPACING = 4 << 20
READ_CHUNK = 1 << 16


class Checkpoint(NamedTuple):
    text_offset: int        # bytes of text inflated before it
    file_offset: int        # compressed bytes read before it
    inflater: object        # a zlib decompress object in that state (copied before use)


def first_checkpoint() -> Checkpoint:
    return Checkpoint(0, 0, zlib.decompressobj(31))


class Passages:
    def __init__(self, path):
        self.path = Path(path)
        try:
            with open(self.path, "rb"):
                pass
        except OSError as e:
            raise InputError(f"cannot read the collection: {e.strerror or e}", self.path) from None
        self.gzip = is_gzip(self.path)
        self._lock = threading.Lock()
        self._keys: np.ndarray | None = None
        self._offsets: np.ndarray | None = None
        self._checkpoints: list[Checkpoint] = [first_checkpoint()]

    def __repr__(self) -> str:
        return f"Passages({str(self.path)!r})"

    @property
    def n_lines(self) -> int:
        self.scan()
        return len(self._keys)

    def scan(self) -> None:
        """Build the offset table (once; later calls return at once)."""
        with self._lock:
            if self._keys is not None:
                return
            keys, offsets = array("q"), array("q")
            checkpoints = [first_checkpoint()] if self.gzip else None
            for offset, line in self._lines(checkpoints):
                doc_id, tab, _ = line.partition(b"\t")
                doc_id = doc_id.strip()
                if tab and doc_id:
                    keys.append(hash(doc_id))
                    offsets.append(offset)
            # Stable: of a repeated id, the first line comes first.
            order = np.argsort(np.frombuffer(keys, dtype=np.int64), kind="stable")
            self._keys = np.frombuffer(keys, dtype=np.int64)[order]
            self._offsets = np.frombuffer(offsets, dtype=np.int64)[order]
            if checkpoints is not None:
                self._checkpoints = checkpoints
            self._starts = np.array([checkpoint.text_offset for checkpoint in self._checkpoints], dtype=np.int64)

    def text(self, doc_id: str) -> str | None:
        """The passage of `doc_id`, None when the collection has none."""
        self.scan()
        wanted = str(doc_id).encode("utf-8")
        key = hash(wanted)
        lo, hi = np.searchsorted(self._keys, key, "left"), np.searchsorted(self._keys, key, "right")
        for offset in self._offsets[lo:hi].tolist():
            found, _, text = self._line_at(offset).partition(b"\t")
            if found.strip() == wanted:
                return text.rstrip(b"\r\n").decode("utf-8", errors="replace")
        return None

    # --- reading ------------------------------------------------------------------

    def _lines(self, checkpoints: list[Checkpoint] | None) -> Iterator[tuple[int, bytes]]:
        """(offset in the text, line) of every line; gzip checkpoints appended to `checkpoints`."""
        if not self.gzip:
            with open(self.path, "rb") as f:
                offset = 0
                for line in f:
                    yield offset, line
                    offset += len(line)
            return
        pending, start = b"", 0
        for at, data in self._inflate(checkpoints[0], checkpoints):
            data = pending + data
            begin = at - len(pending)
            position = 0
            while (end := data.find(b"\n", position)) >= 0:
                yield begin + position, data[position:end + 1]
                position = end + 1
            pending = data[position:]
            start = begin + position
        if pending:
            yield start, pending

    def _inflate(self, checkpoint: Checkpoint, checkpoints: list[Checkpoint] | None = None
                 ) -> Iterator[tuple[int, bytes]]:
        """(offset in the text, bytes) from a checkpoint to the end; where `checkpoints` is given,
        a new checkpoint is appended every GZIP_SPACING bytes of text."""
        inflater = checkpoint.inflater.copy()
        text_offset, file_offset = checkpoint.text_offset, checkpoint.file_offset
        try:
            with open(self.path, "rb") as f:
                f.seek(file_offset)
                while chunk := f.read(READ_CHUNK):
                    file_offset += len(chunk)
                    data = inflater.decompress(chunk)
                    while inflater.eof and inflater.unused_data:  # the next gzip member
                        rest = inflater.unused_data
                        inflater = zlib.decompressobj(31)
                        data += inflater.decompress(rest)
                    if data:
                        yield text_offset, data
                        text_offset += len(data)
                    if checkpoints is not None and text_offset - checkpoints[-1].text_offset >= GZIP_SPACING:
                        checkpoints.append(Checkpoint(text_offset, file_offset, inflater.copy()))
        except zlib.error as e:
            raise InputError(f"damaged gzip data near byte {file_offset:,} ({e})", self.path) from None

    def _line_at(self, offset: int) -> bytes:
        if not self.gzip:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.readline()
        at = int(np.searchsorted(self._starts, offset, "right")) - 1
        parts: list[bytes] = []
        for text_offset, data in self._inflate(self._checkpoints[at]):
            if text_offset + len(data) <= offset:
                continue
            if not parts:
                data = data[offset - text_offset:]
            end = data.find(b"\n")
            if end >= 0:
                parts.append(data[:end + 1])
                break
            parts.append(data)
        return b"".join(parts)
