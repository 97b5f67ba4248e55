"""Provenance of data rows and the held-out rule.

Every file of generated or simulated rows says where its rows come from, and every checkpoint
says which rows it was trained (and validated) on, so that an evaluation can refuse a "held-out"
file that shares rows with the training data.

A :class:`Provenance` names one contiguous range of rows ``[start, stop)`` of one *stream*.  A
stream is identified by ``(source, seed, setting)``: the program that produced it (e.g.
``"calo.sim"``), its random seed (``None`` for an unseeded source such as an external file) and
a setting label (a particle type, an environment name, ...).  Row ``k`` of a stream is always the
same row, however the stream was cut into files or shards.  Two provenances *overlap* when they
name the same stream and their row ranges intersect.

A file carries a list of provenances (a merged file holds one per input) in the HDF5 attribute
``provenance`` (a JSON list), plus the flat attributes ``provenance_seed``,
``provenance_setting``, ``provenance_rows`` and ``provenance_shard`` for a single-range file, so
``h5ls -v`` shows them.  :func:`select_rows` maps a file's row range (e.g. the training rows) to
the stream rows it holds, for storing in a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import PhysmlError

__all__ = [
    "ATTR_KEYS",
    "PROVENANCE_ATTR",
    "Provenance",
    "ProvenanceOverlapError",
    "check_disjoint",
    "from_attrs",
    "from_records",
    "merged_attrs",
    "overlapping",
    "select_rows",
    "to_attrs",
    "to_records",
]

#: HDF5 file attribute holding the JSON list of provenance records.
PROVENANCE_ATTR = "provenance"


class ProvenanceOverlapError(PhysmlError, ValueError):
    """A file meant to be held out shares rows with the data a model was trained on."""


@dataclass(frozen=True)
class Provenance:
    """Rows ``[start, stop)`` of the stream ``(source, seed, setting)``; ``shard`` is "i/n"."""

    source: str
    seed: int | None
    setting: str
    start: int
    stop: int
    shard: str = "0/1"

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("provenance source must be a non-empty string")
        if self.start < 0 or self.stop < self.start:
            raise ValueError(f"provenance rows must satisfy 0 <= start <= stop, got "
                             f"{self.start}..{self.stop}")

    @property
    def stream(self) -> tuple[str, int | None, str]:
        """The stream identity ``(source, seed, setting)``."""
        return (self.source, self.seed, self.setting)

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def overlaps(self, other: Provenance) -> bool:
        """True when both name the same stream and their row ranges intersect."""
        return (self.stream == other.stream and self.rows > 0 and other.rows > 0
                and self.start < other.stop and other.start < self.stop)

    def describe(self) -> str:
        seed = "unseeded" if self.seed is None else f"seed {self.seed}"
        return f"{self.source} {self.setting} {seed} rows {self.start}:{self.stop}"


def to_records(provenances: Iterable[Provenance]) -> list[dict[str, Any]]:
    """Plain dicts (JSON-ready) of a list of provenances."""
    return [asdict(p) for p in provenances]


def from_records(records: Iterable[Mapping[str, Any]]) -> list[Provenance]:
    """Inverse of :func:`to_records`; raises ValueError on a malformed record."""
    out = []
    for rec in records:
        try:
            seed = rec.get("seed")
            out.append(Provenance(source=str(rec["source"]),
                                  seed=None if seed is None else int(seed),
                                  setting=str(rec.get("setting", "")), start=int(rec["start"]),
                                  stop=int(rec["stop"]), shard=str(rec.get("shard", "0/1"))))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed provenance record {dict(rec)!r}: {exc}") from None
    return out


def to_attrs(provenances: Sequence[Provenance]) -> dict[str, Any]:
    """HDF5 file attributes for ``provenances`` (see the module docstring)."""
    attrs: dict[str, Any] = {PROVENANCE_ATTR: to_records(provenances)}
    if len(provenances) == 1:
        p = provenances[0]
        attrs.update(provenance_source=p.source,
                     provenance_seed=-1 if p.seed is None else p.seed,
                     provenance_setting=p.setting, provenance_rows=[p.start, p.stop],
                     provenance_shard=p.shard)
    return attrs


#: Every attribute :func:`to_attrs` may write.
ATTR_KEYS: tuple[str, ...] = (PROVENANCE_ATTR, "provenance_source", "provenance_seed",
                              "provenance_setting", "provenance_rows", "provenance_shard")


def merged_attrs(inputs: Sequence[Sequence[Provenance] | None]) -> dict[str, Any]:
    """File attributes of the concatenation of files with provenances ``inputs`` (in order).

    Every input's records are kept in order and contiguous ranges of one stream are joined
    (shard ``"merged"``); if any input records none, the result records none.  Keys of
    :data:`ATTR_KEYS` that the result does not set are None, so that attributes copied from
    the first input (as ``concat_h5`` does) are cleared.
    """
    attrs: dict[str, Any] = dict.fromkeys(ATTR_KEYS)
    records: list[Provenance] = []
    for found in inputs:
        if found is None:
            return attrs
        for p in found:
            if records and records[-1].stream == p.stream and records[-1].stop == p.start:
                last = records.pop()
                p = Provenance(p.source, p.seed, p.setting, last.start, p.stop, "merged")
            records.append(p)
    attrs.update(to_attrs(records))
    return attrs


def from_attrs(attrs: Mapping[str, Any]) -> list[Provenance] | None:
    """Provenances recorded in file attributes, or None when the file records none."""
    records = attrs.get(PROVENANCE_ATTR)
    if records is None:
        return None
    if not isinstance(records, list):
        raise ValueError(f"attribute '{PROVENANCE_ATTR}' is not a list of records")
    return from_records(records)


def select_rows(provenances: Sequence[Provenance], lo: int, hi: int) -> list[Provenance]:
    """Stream rows held by file rows ``[lo, hi)`` of a file made of ``provenances`` in order."""
    if lo < 0 or hi < lo:
        raise ValueError(f"row range must satisfy 0 <= lo <= hi, got {lo}..{hi}")
    out, offset = [], 0
    for p in provenances:
        a, b = max(lo, offset), min(hi, offset + p.rows)
        if a < b:
            out.append(Provenance(p.source, p.seed, p.setting, p.start + a - offset,
                                  p.start + b - offset, p.shard))
        offset += p.rows
    if hi > offset:
        raise ValueError(f"row range {lo}..{hi} goes past the {offset} rows the provenance covers")
    return out


def overlapping(a: Iterable[Provenance], b: Iterable[Provenance]
                ) -> list[tuple[Provenance, Provenance]]:
    """All pairs ``(x, y)`` with ``x`` in ``a`` and ``y`` in ``b`` that overlap."""
    b_list = list(b)
    return [(x, y) for x in a for y in b_list if x.overlaps(y)]


def check_disjoint(used: Iterable[Provenance], held_out: Iterable[Provenance],
                   held_out_name: str = "reference") -> None:
    """Raise :class:`ProvenanceOverlapError` (one line) if ``held_out`` shares rows with ``used``.

    ``used`` are the rows a model was trained/validated on; ``held_out`` those of the file
    meant to be independent of them.
    """
    pairs = overlapping(used, held_out)
    if pairs:
        x, y = pairs[0]
        lo, hi = max(x.start, y.start), min(x.stop, y.stop)
        raise ProvenanceOverlapError(
            f"{held_out_name} overlaps the training data: {y.describe()} shares rows {lo}:{hi} "
            f"with {x.describe()}; use a file simulated with another seed or rows")
