"""Independent random streams derived from the recipe's one seed."""


def test_streams_differ_by_purpose_and_seed():
    from paiexport.seeding import stream_seed

    seeds = {stream_seed(s, p) for s in (0, 1) for p in ("selection", "batches")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)
