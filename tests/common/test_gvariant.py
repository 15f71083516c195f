"""GVariant `a{sv}` of strings, against GLib itself (libglib through ctypes) and against the
bytes rpm-ostree's daemon writes for Zincati's driver registration."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_exporter.common import gvariant

# /run/rpm-ostree/update-driver.gv as rpm-ostree writes it after `rpm-ostree deploy ""
# --register-driver=Zincati` from zincati.service (rpmostreed-transaction-types.cxx,
# record_driver_info: a GVariantBuilder of driver-name then driver-sd-unit), 69 bytes.
ZINCATI_DRIVER = bytes.fromhex(
    "6472697665722d6e616d6500000000005a696e636174690000730c0000000000"
    "6472697665722d73642d756e697400007a696e636174692e736572766963650000730f1b43"
)


def _glib() -> ctypes.CDLL:
    name = ctypes.util.find_library("glib-2.0")
    assert name is not None, "libglib-2.0 is needed (Debian package libglib2.0-0; scripts/bootstrap installs it)"
    lib = ctypes.CDLL(name)
    for function, result, arguments in (
        ("g_variant_type_new", ctypes.c_void_p, [ctypes.c_char_p]),
        ("g_variant_type_free", None, [ctypes.c_void_p]),
        ("g_variant_builder_new", ctypes.c_void_p, [ctypes.c_void_p]),
        ("g_variant_builder_add_value", None, [ctypes.c_void_p, ctypes.c_void_p]),
        ("g_variant_builder_end", ctypes.c_void_p, [ctypes.c_void_p]),
        ("g_variant_builder_unref", None, [ctypes.c_void_p]),
        ("g_variant_new_string", ctypes.c_void_p, [ctypes.c_char_p]),
        ("g_variant_new_variant", ctypes.c_void_p, [ctypes.c_void_p]),
        ("g_variant_new_dict_entry", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
        ("g_variant_ref_sink", ctypes.c_void_p, [ctypes.c_void_p]),
        ("g_variant_get_size", ctypes.c_size_t, [ctypes.c_void_p]),
        ("g_variant_get_data", ctypes.c_void_p, [ctypes.c_void_p]),
        ("g_variant_unref", None, [ctypes.c_void_p]),
    ):
        getattr(lib, function).restype = result
        getattr(lib, function).argtypes = arguments
    return lib


GLIB = _glib()


def glib_serialized(entries: dict[str, str]) -> bytes:
    """What GLib writes for a GVariantBuilder of `a{sv}` fed `entries` in order."""
    kind = GLIB.g_variant_type_new(b"a{sv}")
    builder = GLIB.g_variant_builder_new(kind)
    for key, value in entries.items():
        entry = GLIB.g_variant_new_dict_entry(
            GLIB.g_variant_new_string(key.encode()),
            GLIB.g_variant_new_variant(GLIB.g_variant_new_string(value.encode())),
        )
        GLIB.g_variant_builder_add_value(builder, entry)
    variant = GLIB.g_variant_ref_sink(GLIB.g_variant_builder_end(builder))
    try:
        size = GLIB.g_variant_get_size(variant)
        return ctypes.string_at(GLIB.g_variant_get_data(variant), size) if size else b""
    finally:
        GLIB.g_variant_unref(variant)
        GLIB.g_variant_builder_unref(builder)
        GLIB.g_variant_type_free(kind)


def test_zincatis_driver_registration_reads_and_writes_byte_for_byte() -> None:
    expected = {"driver-name": "Zincati", "driver-sd-unit": "zincati.service"}
    assert gvariant.decode_string_dict(ZINCATI_DRIVER) == expected
    assert gvariant.encode_string_dict(expected) == ZINCATI_DRIVER
    assert glib_serialized(expected) == ZINCATI_DRIVER


_TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=0xD7FF), max_size=300)  # no NUL, no surrogates


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_TEXT, _TEXT, max_size=12))
def test_any_string_dict_is_serialized_as_glib_does(entries: dict[str, str]) -> None:
    # Sizes cross the 1-, 2- and 4-byte framing offsets (values up to 300 characters).
    serialized = glib_serialized(entries)
    assert gvariant.encode_string_dict(entries) == serialized
    assert gvariant.decode_string_dict(serialized) == entries


@pytest.mark.parametrize(
    "data",
    [
        ZINCATI_DRIVER[:-1],  # the last framing offset cut off
        ZINCATI_DRIVER[:40],
        b"\xff" * 8,
        b"driver-name\0",
    ],
)
def test_a_damaged_file_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a GVariant"):
        gvariant.decode_string_dict(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_read_as_a_dict_or_a_value_error(data: bytes) -> None:
    try:
        decoded = gvariant.decode_string_dict(data)
    except ValueError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in decoded.items())
