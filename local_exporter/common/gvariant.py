"""GVariant's serialization format (GLib's, not DBus'), for the one shape hosts write to files
we read: a dictionary `a{sv}` whose values are strings, such as rpm-ostree's update driver
(/run/rpm-ostree/update-driver.gv). Other value types are skipped on reading.

The format (GLib docs, "GVariant Serialization"): an array of variable-size elements is the
elements, each aligned to 8 here, then one framing offset per element (its end); a dict entry
`{sv}` is the key with its NUL, padding to 8, the variant, then the key's end as a framing
offset; a variant is the value, a NUL, and the value's type string. Offsets take 1, 2, 4 or 8
bytes, the fewest that can address the container's size.
"""

from __future__ import annotations

_ALIGN = 8


def _offset_size(size: int) -> int:
    for width in (1, 2, 4, 8):
        if size < 1 << (8 * width):
            return width
    raise ValueError("GVariant container too large")


def _read_offset(data: bytes, at: int, width: int) -> int:
    return int.from_bytes(data[at : at + width], "little")


def decode_string_dict(data: bytes) -> dict[str, str]:
    """The `s` entries of a serialized `a{sv}`; ValueError if `data` is not one."""
    if not data:
        return {}
    width = _offset_size(len(data))
    last_end = _read_offset(data, len(data) - width, width)
    if last_end > len(data) or (len(data) - last_end) % width:
        raise ValueError("not a GVariant array: bad framing offsets")
    count = (len(data) - last_end) // width
    result, start = {}, 0
    for index in range(count):
        end = _read_offset(data, last_end + index * width, width)
        if not start <= end <= last_end:
            raise ValueError("not a GVariant array: offsets out of order")
        entry = data[start:end]
        key, value = _decode_entry(entry)
        if value is not None:
            result[key] = value
        start = -(-end // _ALIGN) * _ALIGN
    return result


def _decode_entry(entry: bytes) -> tuple[str, str | None]:
    width = _offset_size(len(entry))
    if len(entry) < width + 1:
        raise ValueError("not a GVariant dict entry: too short")
    key_end = _read_offset(entry, len(entry) - width, width)
    if not 0 < key_end <= len(entry) - width or entry[key_end - 1] != 0:
        raise ValueError("not a GVariant dict entry: bad key")
    key = entry[: key_end - 1].decode()
    variant = entry[-(-key_end // _ALIGN) * _ALIGN : len(entry) - width]
    separator = variant.rfind(b"\0")
    if separator < 0:
        raise ValueError(f"entry {key!r}: not a variant")
    value, signature = variant[:separator], variant[separator + 1 :]
    if signature != b"s":
        return key, None
    if not value.endswith(b"\0"):
        raise ValueError(f"entry {key!r}: string without its NUL")
    return key, value[:-1].decode()


def encode_string_dict(entries: dict[str, str]) -> bytes:
    """`entries` as GLib serializes an `a{sv}` of strings built in this order."""
    body, ends = b"", []
    for key, value in entries.items():
        body += b"\0" * (-len(body) % _ALIGN)
        key_bytes = key.encode() + b"\0"
        variant = value.encode() + b"\0" + b"\0s"
        unframed = key_bytes + b"\0" * (-len(key_bytes) % _ALIGN) + variant
        width = _offset_size(len(unframed) + 1)
        while _offset_size(len(unframed) + width) != width:
            width *= 2
        body += unframed + len(key_bytes).to_bytes(width, "little")
        ends.append(len(body))
    width = _offset_size(len(body) + len(ends))
    while _offset_size(len(body) + len(ends) * width) != width:
        width *= 2
    return body + b"".join(end.to_bytes(width, "little") for end in ends)
