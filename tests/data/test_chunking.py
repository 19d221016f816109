"""split_text: bounded pieces, cut after newlines when possible, nothing lost."""

import random

import pytest

from transformer_jax.data.chunking import split_text


@pytest.mark.parametrize("max_chars", [1, 3, 10, 64])
def test_pieces_are_bounded_and_rejoin(max_chars):
    rng = random.Random(max_chars)
    text = "".join(rng.choice("ab \n\té") for _ in range(1000))
    pieces = split_text(text, max_chars)
    assert "".join(pieces) == text
    assert all(1 <= len(p) <= max_chars for p in pieces)


def test_cuts_after_the_last_newline_in_the_window():
    text = "aaa\nbb\ncccc\n" + "d" * 25
    pieces = split_text(text, 10)
    assert pieces[:2] == ["aaa\nbb\n", "cccc\n"]  # whole lines when a line fits
    assert pieces[2:] == ["d" * 10, "d" * 10, "d" * 5]  # a too-long line is cut hard


def test_short_text_is_one_piece():
    assert split_text("", 5) == [""]
    assert split_text("abc", 3) == ["abc"]
