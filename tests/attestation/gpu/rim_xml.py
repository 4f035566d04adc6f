"""Writes RIMs in NVIDIA's SWID layout (namespace prefixes as NVIDIA's files use them), so the
tests can synthesise golden measurements for the real samples and for the simulated GPU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def rim_xml(
    version: str,
    golden: Mapping[int, Sequence[bytes]],
    *,
    product: str = "GH100",
    inactive: Sequence[int] = (),
    tag_id: str = "synthesised",
) -> bytes:
    """A RIM for `version` with `golden[i]` the alternatives of RIM index i (0-based), plus
    zero-valued entries for the indices in `inactive`."""
    resources = []
    entries = [(i, values, True) for i, values in golden.items()]
    entries += [(i, [bytes(48)], False) for i in inactive]
    for index, values, active in sorted(entries, key=lambda e: e[0]):
        hashes = " ".join(f'ns2:Hash{n}="{v.hex()}"' for n, v in enumerate(values))
        resources.append(
            f'<ns0:Resource type="Measurement" index="{index}" active="{active}" '
            f'alternatives="{len(values)}" {hashes} name="Measurement_{index}" size="48"/>'
        )
    return (
        '<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" '
        'xmlns:ns0="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" '
        'xmlns:ns2="http://www.w3.org/2001/04/xmlenc#sha384" corpus="false" '
        f'name="{product}" tagId="{tag_id}" version="1.0" tagVersion="0">'
        '<ns0:Entity name="NVIDIA Corporation" role="softwareCreator tagCreator"/>'
        f'<ns0:Meta colloquialVersion="{version.upper()}" edition="GPU" product="{product}"/>'
        '<ns0:Payload xmlns:SHA384="http://www.w3.org/2001/04/xmlenc#sha384">'
        + "".join(resources)
        + "</ns0:Payload></SoftwareIdentity>"
    ).encode()
