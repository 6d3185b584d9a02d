"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification, written from the RFC.

A tree of ``n`` leaves is never held in memory: proofs and roots are computed over a *node
source*, a callable ``nodes(level, index)`` giving the hash of the complete subtree of
``2**level`` leaves that starts at leaf ``index << level`` (level 0 is a leaf hash). Every
range the RFC's recursion visits is aligned, so a root, an inclusion proof or a consistency
proof reads only O(log n) stored nodes, whatever the size of the log.

:class:`Frontier` is the log's right edge (one complete subtree per set bit of its size): it
appends leaves, names the complete nodes each append finishes (for the store to keep) and gives
the root, in O(log n) memory, which is also how a whole log is re-verified from its entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "MemoryTree",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

#: ``nodes(level, index)``: the hash of the complete subtree of ``2**level`` leaves at
#: ``index << level``
NodeSource = Callable[[int, int], bytes]

#: MTH({}) = SHA-256() (RFC 9162 section 2.1.1)
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = HASH(0x00 || d)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: HASH(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k, the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(nodes: NodeSource, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a range the RFC's recursion visits (``lo`` aligned, ``hi > lo``)."""
    n = hi - lo
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return nodes(level, lo >> level)
    k = _split(n)
    return node_hash(nodes((k.bit_length() - 1), lo // k), _range_root(nodes, lo + k, hi))


def root(nodes: NodeSource, size: int) -> bytes:
    """The root hash of the first ``size`` leaves: O(log size) node reads."""
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return EMPTY_ROOT if size == 0 else _range_root(nodes, 0, size)


def inclusion_proof(nodes: NodeSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 section 2.1.1: the audit path of leaf ``index``."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_range_root(nodes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_range_root(nodes, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(nodes: NodeSource, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 6962 section 2.1.2: that the first ``first`` leaves of
    the tree of ``second`` are the tree of ``first`` (empty when the sizes are equal or 0)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(_range_root(nodes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_range_root(nodes, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(_range_root(nodes, lo, hi))
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` place ``leaf`` (a leaf hash) at ``index`` in the
    tree of ``size`` whose root is ``root_hash``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of ``second`` (root ``second_root``) an extension
    of the tree of ``first`` (root ``first_root``)?"""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class Frontier:
    """The right edge of a log: the complete subtrees its size decomposes into, largest first.

    ``append`` adds a leaf hash and returns the complete nodes (level >= 1) it finished, as
    ``(level, index, hash)``; ``root()`` folds the edge into the tree's root."""

    __slots__ = ("_edge", "size")

    def __init__(self, size: int = 0, edge: Sequence[bytes] = ()) -> None:
        if len(edge) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} nodes, not {len(edge)}")
        self.size = size
        levels = [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
        self._edge: list[tuple[int, bytes]] = list(zip(levels, edge, strict=True))

    @classmethod
    def load(cls, nodes: NodeSource, size: int) -> Frontier:
        """The frontier of the first ``size`` leaves of a stored tree: popcount(size) reads."""
        edge, offset = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                edge.append(nodes(level, offset >> level))
                offset += 1 << level
        return cls(size, edge)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        edge = self._edge
        done: list[tuple[int, int, bytes]] = []
        level, h = 0, leaf
        end = self.size + 1
        while edge and edge[-1][0] == level:
            h = node_hash(edge.pop()[1], h)
            level += 1
            done.append((level, (end >> level) - 1, h))
        edge.append((level, h))
        self.size = end
        return done

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        done: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            done.extend(self.append(leaf))
        return done

    def edge(self) -> list[bytes]:
        return [h for _, h in self._edge]

    def root(self) -> bytes:
        if not self._edge:
            return EMPTY_ROOT
        h = self._edge[-1][1]
        for _, left in reversed(self._edge[:-1]):
            h = node_hash(left, h)
        return h


class MemoryTree:
    """A whole tree in memory, every complete node kept: a node source for tests, a device's
    checks and the benchmarks."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self._frontier = Frontier()
        for leaf in leaves:
            self.append(leaf)

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        for level, index, h in self._frontier.append(leaf):
            if level == len(self.levels):
                self.levels.append([])
            assert len(self.levels[level]) == index
            self.levels[level].append(h)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return self._frontier.root() if size is None else root(self.node, size)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()
