import jiwer
import pytest
import torch

from asr.data.text import CharTokenizer
from asr.decode.ctc import greedy_decode
from asr.evaluation.metrics import error_counts


def one_hot_log_probs(frames: list[str], tokenizer: CharTokenizer) -> torch.Tensor:
    """(T, V) log-probabilities that put 0.9 on the named token of each frame ('_' = blank)."""
    vocab = len(tokenizer)
    probs = torch.full((len(frames), vocab), 0.1 / (vocab - 1))
    for t, token in enumerate(frames):
        index = 0 if token == "_" else tokenizer.vocabulary.index(token)
        probs[t, index] = 0.9
    return probs.log()


def test_greedy_merges_repeats_and_drops_blanks():
    tokenizer = CharTokenizer()
    frames = list("__hh_e_ll_l__oo_ ") + list("__") + list("w_o_rr__l_d")
    rows = [
        one_hot_log_probs(frames, tokenizer),
        one_hot_log_probs(list("n_oo") + ["_"] * (len(frames) - 4), tokenizer),
    ]
    log_probs = torch.stack(rows)  # (2, T, V)
    texts = greedy_decode(log_probs, torch.tensor([len(frames), 4]), tokenizer)
    assert texts == ["hello world", "no"]


def test_greedy_ignores_frames_past_the_length():
    tokenizer = CharTokenizer()
    log_probs = one_hot_log_probs(list("y_es_xyz"), tokenizer)[None]
    assert greedy_decode(log_probs, torch.tensor([5]), tokenizer) == ["yes"]


def test_wer_equals_jiwer_and_is_pooled():
    references = ["the cat sat on the mat", "hello", "a b c d e f g h i j"]
    hypotheses = ["the cat sat on mat", "yellow", "a b c d e f g h i j k"]
    counts = error_counts(references, hypotheses)
    assert counts.wer == pytest.approx(jiwer.wer(references, hypotheses))
    assert counts.cer == pytest.approx(jiwer.cer(references, hypotheses))
    # pooled: 3 errors / 17 words, not the mean of per-utterance rates (1/6 + 1/1 + 1/10) / 3
    assert counts.wer == pytest.approx(3 / 17)
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 1, 1)
    assert counts.num_words == 17 and counts.num_utterances == 3
    assert counts.sentence_error_rate == pytest.approx(1.0)
