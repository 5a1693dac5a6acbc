"""The shipped reader weights' file: int8 rows round-trip, and a damaged file is refused."""

from __future__ import annotations

import numpy as np
import pytest

from kbqa.reader.build import READER_SHA256, READER_WEIGHTS
from kbqa.reader.weights import file_sha256, load_reader_weights, save_reader_weights


def test_matrices_round_trip_within_int8_rounding_and_vectors_exactly(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"l0.q.w": rng.normal(size=(8, 5)).astype(np.float32), "l0.q.b": rng.normal(size=8).astype(np.float32)}
    path = save_reader_weights(tensors, tmp_path / "r.npz", {"seed": 1})
    loaded, record = load_reader_weights(path, file_sha256(path))
    assert record == {"seed": 1}
    np.testing.assert_array_equal(loaded["l0.q.b"], tensors["l0.q.b"])
    step = np.abs(tensors["l0.q.w"]).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(loaded["l0.q.w"] - tensors["l0.q.w"]) <= step / 2 + 1e-7)


def test_a_file_whose_hash_is_not_the_expected_one_is_refused(tmp_path):
    path = save_reader_weights({"qa.b": np.zeros(2, np.float32)}, tmp_path / "r.npz", {})
    with pytest.raises(ValueError, match="SHA-256"):
        load_reader_weights(path, "0" * 64)


def test_the_shipped_weights_match_their_recorded_hash_and_size_limit():
    assert READER_WEIGHTS.stat().st_size <= 30 * 1024 * 1024
    assert file_sha256(READER_WEIGHTS) == READER_SHA256
    _, record = load_reader_weights(READER_WEIGHTS, READER_SHA256)
    assert record["recipe"]["include_dev_eval"] is False  # the shipped figures are held-out figures
