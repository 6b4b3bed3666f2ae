"""Cost of each media stage per 20 ms frame, with pytest-benchmark.

``make bench`` runs them with timing (``--benchmark-enable``); ``make test`` runs each body once
as a smoke test. Every benchmark processes ``FRAMES`` frames of real speech per round, so the
median divided by ``FRAMES`` is the cost per 20 ms frame (``extra_info["frames"]``). Compare
stages with each other and with the baselines measured here in the same process (``audioop``
for G.711), not with absolute figures from another machine.
"""

from __future__ import annotations

import audioop
from collections.abc import Callable

import pytest

from tgsip.media import g711
from tgsip.media.corpus import CorpusMissingError, speech
from tgsip.media.loadgen import run_stage

FRAMES = 50  # one second of 20 ms frames

try:
    SPEECH = speech(FRAMES * 0.020)
except CorpusMissingError as e:  # pragma: no cover - scripts/setup installs the corpus
    pytest.skip(str(e), allow_module_level=True)

STAGES = [
    "g711_encode",
    "g711_decode",
    "g711_plc",
    "opus_encode_8k",
    "opus_decode_8k",
    "opus_encode_48k",
    "resample_8_48",
    "resample_48_8",
    "dtmf_detect",
    "rfc4733_receive",
    "jitter_push_pop",
    "rtp_parse_build",
    "line_transcode_pair",
]


@pytest.mark.parametrize("stage", STAGES)
def test_stage(benchmark: Callable[..., int], stage: str) -> None:
    benchmark.extra_info["frames"] = FRAMES  # type: ignore[attr-defined]
    processed = benchmark(run_stage, stage, SPEECH, FRAMES)
    assert processed == FRAMES


@pytest.mark.parametrize(
    ("name", "func"),
    [
        ("ours", lambda: g711.encode("alaw", SPEECH)),
        ("audioop_baseline", lambda: audioop.lin2alaw(SPEECH, 2)),
    ],
)
def test_g711_encode_against_baseline(
    benchmark: Callable[..., bytes], name: str, func: Callable[[], bytes]
) -> None:
    benchmark.group = "g711 encode, 1 s"  # type: ignore[attr-defined]
    assert len(benchmark(func)) == len(SPEECH) // 2
