"""The hub store's key blobs, on both backends: who may store and read which envelope.

The envelopes are opaque to the hub (strings here stand in for them); what the store must get
right is the bookkeeping: one genesis per tenant, a device reads only its own copy, blobs go
only to active devices of the caller's tenant, all or nothing, and every recovery fetch is on
record.
"""

from __future__ import annotations

import dataclasses

import pytest

from truthvault.crypto import DeviceKeys
from truthvault.errors import ConflictState, InvalidEnrolCode, InvalidInput, NotFound
from truthvault.hub.store import DeviceContext, HubStore, WrappedKey


def _enrol(store: HubStore, tenant: str, name: str) -> DeviceContext:
    bundle = DeviceKeys.generate().public_bundle()
    device, _ = store.enroll(store.create_enrol_code(tenant), name, bundle["sign"], bundle["box"])
    holder = store.device_keys(device.id)
    assert holder is not None
    return dataclasses.replace(holder.ctx, auth="signature")


@pytest.fixture
def devices(hub_store: HubStore) -> tuple[DeviceContext, DeviceContext, DeviceContext]:
    """Laptop and phone of tenant alpha, and beta's desktop."""
    hub_store.add_tenant("alpha", "local_first")
    hub_store.add_tenant("beta", "local_first")
    return (
        _enrol(hub_store, "alpha", "laptop"),
        _enrol(hub_store, "alpha", "phone"),
        _enrol(hub_store, "beta", "desktop"),
    )


def test_one_genesis_per_tenant(hub_store: HubStore, devices: tuple[DeviceContext, ...]) -> None:
    laptop, phone, desktop = devices
    assert hub_store.get_wrapped_key(laptop).tenant_keyed is False
    assert hub_store.put_wrapped_keys(laptop, {laptop.device_id: "ring-for-laptop"}, "k1", genesis=True) == 1
    with pytest.raises(ConflictState, match="already has a data key"):
        hub_store.put_wrapped_keys(phone, {phone.device_id: "phone's own ring"}, "k9", genesis=True)
    # the loser's blob was not stored, and the other tenant is untouched
    assert hub_store.get_wrapped_key(phone) == WrappedKey(None, None, True)
    assert hub_store.get_wrapped_key(desktop).tenant_keyed is False
    hub_store.put_wrapped_keys(desktop, {desktop.device_id: "beta's ring"}, "b1", genesis=True)


def test_a_device_reads_only_its_own_copy(hub_store: HubStore, devices: tuple[DeviceContext, ...]) -> None:
    laptop, phone, _ = devices
    hub_store.put_wrapped_keys(laptop, {laptop.device_id: "for-laptop"}, "k1", genesis=True)
    hub_store.put_wrapped_keys(laptop, {phone.device_id: "for-phone"}, "k1")
    mine, theirs = hub_store.get_wrapped_key(laptop), hub_store.get_wrapped_key(phone)
    assert (mine.blob, mine.kid) == ("for-laptop", "k1")
    assert (theirs.blob, theirs.kid) == ("for-phone", "k1")
    holders = {h.name: h.kid for h in hub_store.key_holders(laptop)}
    assert holders == {"laptop": "k1", "phone": "k1"}
    # a newer copy replaces the older one
    hub_store.put_wrapped_keys(phone, {laptop.device_id: "for-laptop-k2"}, "k2")
    assert hub_store.get_wrapped_key(laptop).kid == "k2"


def test_blobs_go_only_to_active_devices_of_the_tenant_all_or_nothing(
    hub_store: HubStore, devices: tuple[DeviceContext, ...]
) -> None:
    laptop, phone, desktop = devices
    with pytest.raises(NotFound, match=desktop.device_id):
        hub_store.put_wrapped_keys(laptop, {phone.device_id: "ok", desktop.device_id: "across"}, "k1")
    assert hub_store.get_wrapped_key(phone).blob is None  # the good half was not kept either
    assert hub_store.get_wrapped_key(desktop).blob is None
    hub_store.revoke_device("alpha", "phone")
    # listed for what its copy held, with no box key to wrap another to
    assert [(h.name, h.revoked, h.box_public) for h in hub_store.key_holders(laptop)][1] == (
        "phone",
        True,
        None,
    )
    with pytest.raises(NotFound):
        hub_store.put_wrapped_keys(laptop, {phone.device_id: "to a revoked device"}, "k1")
    with pytest.raises(InvalidInput, match="key envelope"):
        hub_store.put_wrapped_keys(laptop, {laptop.device_id: ""}, "k1")
    with pytest.raises(InvalidInput, match="key envelope"):
        hub_store.put_wrapped_keys(laptop, {laptop.device_id: "x" * (64 * 1024 + 1)}, "k1")


def test_recovery_blob_is_per_tenant_and_every_fetch_is_recorded(
    hub_store: HubStore, devices: tuple[DeviceContext, ...]
) -> None:
    laptop, phone, desktop = devices
    assert hub_store.get_recovery_blob(phone) is None
    hub_store.put_recovery_blob(laptop, "scrypt-envelope-1", "k1")
    hub_store.put_recovery_blob(laptop, "scrypt-envelope-2", "k2")
    assert hub_store.get_recovery_blob(phone) == "scrypt-envelope-2"
    assert hub_store.get_recovery_blob(desktop) is None
    with pytest.raises(InvalidInput):
        hub_store.put_recovery_blob(laptop, "", "k3")
    events = [(e.type, e.device_id, e.detail) for e in hub_store.security_events("alpha")]
    fetches = [(d, detail) for kind, d, detail in events if kind == "KEY_RECOVERY_FETCHED"]
    assert sorted(fetches, key=lambda f: str(f[1])) == [
        (phone.device_id, {"found": False}),
        (phone.device_id, {"found": True}),
    ]
    assert [kind for kind, _, _ in events].count("KEY_RECOVERY_SET") == 2
    beta = [(e.type, e.device_id, e.detail) for e in hub_store.security_events("beta")]
    assert [e for e in beta if e[0].startswith("KEY_RECOVERY")] == [
        ("KEY_RECOVERY_FETCHED", desktop.device_id, {"found": False})
    ]


def test_whether_a_recovery_copy_exists_is_told_without_a_fetch_on_record(
    hub_store: HubStore, devices: tuple[DeviceContext, ...]
) -> None:
    laptop, phone, desktop = devices
    assert hub_store.recovery_kid(phone) is None
    hub_store.put_recovery_blob(laptop, "scrypt-envelope-1", "k1")
    assert hub_store.recovery_kid(phone) == "k1"
    assert hub_store.recovery_kid(desktop) is None  # another tenant's copy is not this one's
    kinds = [e.type for e in hub_store.security_events(None)]
    assert "KEY_RECOVERY_FETCHED" not in kinds and kinds.count("KEY_RECOVERY_SET") == 1


def test_an_unspent_enrolment_code_reads_the_recovery_blob_without_spending_it(
    hub_store: HubStore, devices: tuple[DeviceContext, ...]
) -> None:
    laptop, _, _ = devices
    code = hub_store.create_enrol_code("alpha")
    tenant, blob = hub_store.recovery_blob_for_code(code)
    assert (tenant.name, blob) == ("alpha", None)
    hub_store.put_recovery_blob(laptop, "scrypt-envelope", "k1")
    assert hub_store.recovery_blob_for_code(code.lower().replace("-", " ")) == (tenant, "scrypt-envelope")
    bundle = DeviceKeys.generate().public_bundle()
    hub_store.enroll(code, "restored", bundle["sign"], bundle["box"])  # the code still works once
    with pytest.raises(InvalidEnrolCode, match="already used"):
        hub_store.recovery_blob_for_code(code)
    with pytest.raises(InvalidEnrolCode, match="unknown"):
        hub_store.recovery_blob_for_code("AAAA-BBBB-CCCC-DDDD")
    expired = hub_store.create_enrol_code("alpha", ttl_s=-1)
    with pytest.raises(InvalidEnrolCode, match="expired"):
        hub_store.recovery_blob_for_code(expired)
    hub_store.add_tenant("gamma", "cloud_first")
    with pytest.raises(ConflictState, match="cloud_first"):
        hub_store.recovery_blob_for_code(hub_store.create_enrol_code("gamma"))
    fetches = [
        (e.device_id, e.detail)
        for e in hub_store.security_events("alpha")
        if e.type == "KEY_RECOVERY_FETCHED"
    ]
    # on record like a device's fetch, with no device: the code stood in for one
    assert fetches == [
        (None, {"found": True, "by": "enrolment code"}),
        (None, {"found": False, "by": "enrolment code"}),
    ]
