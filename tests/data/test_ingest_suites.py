"""The suites in expectations/ on tiny good and bad samples (GX with pandas, no services)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.ingest import parse, validate

pytestmark = pytest.mark.data

LINES = [
    b"2025-03-14T09:26:53,1,GET /data/m/the+matrix+1999/0.mpg",
    b"2025-03-14T09:26:54,1,GET /data/m/the+matrix+1999/1.mpg",
    b"2025-03-14T09:30:00,2,GET /rate/the+matrix+1999=4",
    b"2025-03-14T09:31:00,2,recommendation request 127.0.0.1:8082, status 200, result: a+1999, "
    b"9 ms",
    b"2025-03-14T09:31:00,2,recommendation request 127.0.0.1:8082, status 0, result: , 800 ms",
    b"garbage",
]


def frames(tables) -> dict[str, pd.DataFrame]:
    out = {name: table.to_pandas() for name, table in tables.items()}
    out["reco_request"]["result_length"] = out["reco_request"]["result"].map(len)
    out["snapshot"] = pd.DataFrame(
        [
            {
                "reconciled": True,
                "offsets_contiguous": True,
                "files_verified": True,
                "reject_rate": 0.01,
                "volume_ratio": 1.2,
                "rating_kl": 0.02,
                "new_user_share": 0.1,
                "new_movie_share": 0.05,
            }
        ]
    )
    return out


def test_good_sample_passes_and_bad_values_fail_by_name(tmp_path):
    tables = parse.parse_batch(LINES, np.zeros(len(LINES)), np.arange(len(LINES)))
    good = frames(tables)
    limits = validate.thresholds()
    ok, failures = validate.run_checkpoints("good", good, limits, tmp_path)
    assert ok, failures

    bad = frames(tables)
    bad["rate"].loc[0, "rating"] = 7
    bad["watch"].loc[0, "movie_id"] = "The Matrix"
    bad["watch"].loc[1, "kafka_offset"] = bad["watch"].loc[0, "kafka_offset"]
    bad["snapshot"].loc[0, "reject_rate"] = 0.5
    bad["snapshot"].loc[0, "rating_kl"] = 3.0
    ok, failures = validate.run_checkpoints("bad", bad, limits, tmp_path)
    text = "\n".join(failures)
    assert not ok
    for what in ("rate.rating", "watch.movie_id", "snapshot.reject_rate", "snapshot.rating_kl"):
        assert what in text, text
    assert "expect_compound_columns_to_be_unique" in text
    assert (tmp_path / "gx" / "data_docs" / "index.html").exists()
