"""A small version type and hypothesis strategy for the pure-core tests."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from truthvault.clock import format_stamp

BASE_MS = 1_790_000_000_000


@dataclass(frozen=True)
class V:
    """A version: just the fields resolve() reads."""

    truth_level: int
    tick: int
    device_id: str
    base: V | None = None
    deleted: bool = False
    version: int = 1

    @property
    def last_modified_at(self) -> str:
        return format_stamp(BASE_MS + self.tick)

    @property
    def base_version(self) -> int:
        return self.base.version if self.base else 0

    @property
    def base_clock(self) -> str | None:
        return self.base.last_modified_at if self.base else None


def versions() -> st.SearchStrategy[V]:
    return st.builds(
        V,
        truth_level=st.integers(1, 5),
        tick=st.integers(0, 50),
        device_id=st.sampled_from(["a", "b", "c"]),
        deleted=st.booleans(),
    )
