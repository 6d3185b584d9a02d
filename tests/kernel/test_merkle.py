"""RFC 6962 / 9162 Merkle trees: the published certificate-transparency vectors, an independent
implementation (pymerkle) and properties over every shape of tree."""

from __future__ import annotations

import pymerkle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truthvault.kernel._merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# The test vectors of RFC 6962's reference implementation (certificate-transparency, kept in
# transparency-dev/merkle testonly): the eight leaves, the root for each size, proofs.
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H_96A2 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
H_5F08 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_6B47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_BC1A = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_CA85 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
H_D37E = ROOTS[4]
H_0EBC = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
#: (leaf index, tree size, audit path), leaf indexes from 0
INCLUSION = [
    (0, 1, []),
    (0, 8, [H_96A2, H_5F08, H_6B47]),
    (5, 8, [H_BC1A, H_CA85, H_D37E]),
    (2, 3, [ROOTS[2]]),
    (1, 5, [ROOTS[1], H_5F08, H_BC1A]),
]
#: (first size, second size, consistency path)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, [H_96A2, H_5F08, H_6B47]),
    (6, 8, [H_0EBC, H_CA85, H_D37E]),
    (2, 5, [H_5F08, H_BC1A]),
    (2, 8, [H_5F08, H_6B47]),
]

TREE = MemoryTree(leaf_hash(d) for d in LEAVES)


def test_the_hashes_are_prefixed_as_the_rfc_says() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert leaf_hash(b"").hex() == ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == ROOTS[2]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_published_roots(size: int) -> None:
    assert root(TREE.node, size).hex() == ROOTS[size]
    assert root_of([leaf_hash(d) for d in LEAVES[:size]]).hex() == ROOTS[size]
    assert Frontier.load(TREE.node, size).root().hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_published_ones(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(TREE.node, index, size)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_published_ones(first: int, second: int, path: list[str]) -> None:
    proof = consistency_proof(TREE.node, first, second)
    assert [p.hex() for p in proof] == path
    old, new = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    assert verify_consistency(first, second, old, new, proof)
    if first != second:
        assert not verify_consistency(first, second, new, old, proof)


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(TREE.node, 8, 8)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(TREE.node, 5, 4)
    r = bytes.fromhex(ROOTS[8])
    assert not verify_inclusion(leaf_hash(LEAVES[0]), 8, 8, [], r)
    assert not verify_consistency(5, 4, r, r, [])
    assert not verify_consistency(3, 8, bytes.fromhex(ROOTS[3]), r, [])
    assert verify_consistency(0, 8, EMPTY_ROOT, r, [])


# -- an independent implementation -------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=12), min_size=1, max_size=70), st.data())
def test_pymerkle_agrees_on_roots_and_proofs(entries: list[bytes], data: st.DataObject) -> None:
    """pymerkle (its default hashing prefixes leaves 0x00 and nodes 0x01, as RFC 6962 does)
    builds the same roots, and its inclusion proofs carry our audit path."""
    theirs = pymerkle.InmemoryTree(algorithm="sha256")
    for entry in entries:
        theirs.append_entry(entry)
    ours = MemoryTree(leaf_hash(e) for e in entries)
    n = len(entries)
    for size in range(1, n + 1):
        assert theirs.get_root(size) == ours.root(size)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    proof = theirs.prove_inclusion(index + 1, size)
    pymerkle.verify_inclusion(leaf_hash(entries[index]), ours.root(size), proof)
    assert set(inclusion_proof(ours.node, index, size)) <= set(proof.path)
    prior = data.draw(st.integers(1, size))
    pymerkle.verify_consistency(ours.root(prior), ours.root(size), theirs.prove_consistency(prior, size))


# -- properties --------------------------------------------------------------------------------
def _tree(n: int) -> MemoryTree:
    return MemoryTree(leaf_hash(i.to_bytes(4, "big")) for i in range(n))


BIG = _tree(300)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_nothing_else(case: tuple[int, int]) -> None:
    size, index = case
    proof = inclusion_proof(BIG.node, index, size)
    r = BIG.root(size)
    leaf = BIG.node(0, index)
    assert verify_inclusion(leaf, index, size, proof, r)
    assert len(proof) <= (size - 1).bit_length()
    if size < 300:
        assert not verify_inclusion(leaf, index, size, proof, BIG.root(size + 1))
    if size > 1:
        other = (index + 1) % size
        assert not verify_inclusion(leaf, other, size, proof, r)
        assert not verify_inclusion(BIG.node(0, other), index, size, proof, r)
        assert not verify_inclusion(leaf, index, size, proof[:-1], r)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_consistency_proof_verifies_and_a_rewrite_does_not(case: tuple[int, int]) -> None:
    first, second = case
    proof = consistency_proof(BIG.node, first, second)
    old, new = BIG.root(first), BIG.root(second)
    assert verify_consistency(first, second, old, new, proof)
    assert len(proof) <= 2 * (second.bit_length())
    if first < second:
        # the same sizes over a history with one leaf of the first tree changed
        rewritten = _tree(second)
        rewritten.levels[0][first - 1] = leaf_hash(b"rewritten")
        forged = MemoryTree(rewritten.levels[0])
        assert not verify_consistency(first, second, old, forged.root(), proof)
        assert not verify_consistency(
            first, second, old, forged.root(), consistency_proof(forged.node, first, second)
        )


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 64).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    st.integers(0, 31),
    st.integers(0, 7),
)
def test_any_changed_byte_of_a_proof_fails(case: tuple[int, int], at: int, bit: int) -> None:
    size, index = case
    proof = inclusion_proof(BIG.node, index, size)
    r, leaf = BIG.root(size), BIG.node(0, index)
    j = at % len(proof)
    bad = list(proof)
    bad[j] = bad[j][:at] + bytes([bad[j][at] ^ (1 << bit)]) + bad[j][at + 1 :]
    assert not verify_inclusion(leaf, index, size, bad, r)
    flipped_leaf = leaf[:at] + bytes([leaf[at] ^ (1 << bit)]) + leaf[at + 1 :]
    assert not verify_inclusion(flipped_leaf, index, size, proof, r)
    first = max(1, index)
    cproof = consistency_proof(BIG.node, first, size)
    if cproof:
        k = at % len(cproof)
        cbad = list(cproof)
        cbad[k] = cbad[k][:at] + bytes([cbad[k][at] ^ (1 << bit)]) + cbad[k][at + 1 :]
        assert not verify_consistency(first, size, BIG.root(first), BIG.root(size), cbad)


def test_the_frontier_names_each_complete_node_once() -> None:
    frontier = Frontier()
    seen: dict[tuple[int, int], bytes] = {}
    for i in range(100):
        for level, index, h in frontier.append(BIG.node(0, i)):
            assert (level, index) not in seen
            seen[(level, index)] = h
            assert h == BIG.node(level, index)
    assert len(seen) == 100 - (100).bit_count()
    assert frontier.root() == BIG.root(100)
    assert Frontier(100, frontier.edge()).root() == frontier.root()
    with pytest.raises(ValueError):
        Frontier(100, frontier.edge()[:-1])


def test_proofs_read_only_a_logarithmic_number_of_nodes() -> None:
    reads = 0

    def counting(level: int, index: int) -> bytes:
        nonlocal reads
        reads += 1
        return BIG.node(level, index)

    for size in (255, 256, 299):
        for index in (0, size // 2, size - 1):
            reads = 0
            inclusion_proof(counting, index, size)
            assert reads <= 2 * size.bit_length()
        reads = 0
        consistency_proof(counting, 37, size)
        assert reads <= 3 * size.bit_length()
