"""The exported files a recipe's export.formats asks for (export/variants)."""

from paiexport.export.variants import ExportFormat, variants_for
from paiexport.variant import Variant


def test_variants_for_gives_members_in_build_order():
    chosen = variants_for([ExportFormat.auto, ExportFormat.int8, ExportFormat.dense])
    assert chosen == [Variant.dense, Variant.int8, Variant.deploy]
    assert all(type(v) is Variant for v in chosen)
