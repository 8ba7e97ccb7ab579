import itertools

import pytest
import torch

from asr.features.logmel import FeatureConfig
from asr.model.acoustic import AcousticModel, ModelConfig

FEATURES = FeatureConfig(sample_rate=8000, n_mels=40)
CASES = [
    (cell, bidirectional, frontend, subsampling)
    for cell, bidirectional in itertools.product(["lstm", "gru", "rnn"], [True, False])
    for frontend, subsampling in [("conv", 2), ("conv", 4), ("stack", 1), ("stack", 3), ("stack", 4)]
]


def expected_length(frames: int, frontend: str, subsampling: int) -> int:
    if frontend == "stack":
        return -(-frames // subsampling)  # ceil
    for _ in range({2: 1, 4: 2}[subsampling]):
        frames = (frames - 1) // 2 + 1
    return frames


@pytest.mark.parametrize("cell,bidirectional,frontend,subsampling", CASES)
def test_output_lengths(cell, bidirectional, frontend, subsampling):
    config = ModelConfig(
        frontend=frontend,
        subsampling=subsampling,
        cell=cell,
        bidirectional=bidirectional,
        num_layers=2,
        hidden_size=16,
        conv_channels=4,
    )
    model = AcousticModel(vocab_size=29, features=FEATURES, config=config).eval()
    lengths = torch.tensor([57, 40, 13, 1])
    features = torch.randn(4, 57, 40)
    log_probs, out_lengths = model(features, lengths)
    assert out_lengths.tolist() == [expected_length(n, frontend, subsampling) for n in lengths.tolist()]
    assert log_probs.shape == (4, int(out_lengths.max()), 29)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(4, log_probs.shape[1]), atol=1e-5)
    directions = 2 if bidirectional else 1
    assert model.output.in_features == 16 * directions


def test_spec_augment_only_in_training():
    from asr.features.augment import AugmentConfig

    model = AcousticModel(
        29, FEATURES, ModelConfig(hidden_size=8, num_layers=1), AugmentConfig(freq_masks=2, time_masks=2, freq_warp=0.2)
    )
    features, lengths = torch.randn(2, 50, 40), torch.tensor([50, 50])
    model.eval()
    assert torch.equal(model(features, lengths)[0], model(features, lengths)[0])
    model.train()
    torch.manual_seed(0)
    augmented = model.spec_augment(model.normalizer(features, lengths))
    assert not torch.equal(augmented, features)


def test_bad_config_values_are_refused():
    with pytest.raises(ValueError, match="cell"):
        ModelConfig(cell="transformer")
    with pytest.raises(ValueError, match="conv"):
        ModelConfig(frontend="conv", subsampling=3)


@pytest.mark.parametrize("cell,frontend,subsampling", [("lstm", "stack", 3), ("gru", "conv", 4), ("rnn", "conv", 2)])
def test_output_does_not_depend_on_batch_mates(cell, frontend, subsampling):
    """An utterance decodes the same alone as padded in a batch (the backward direction
    and the front end must not read the padding)."""
    torch.manual_seed(0)
    config = ModelConfig(
        cell=cell, num_layers=2, hidden_size=16, frontend=frontend, subsampling=subsampling, conv_channels=4
    )
    model = AcousticModel(vocab_size=29, features=FEATURES, config=config).eval()
    short = torch.randn(1, 21, 40)
    batch = torch.cat([torch.nn.functional.pad(short, (0, 0, 0, 30), value=3.0), torch.randn(1, 51, 40)])
    alone, alone_lengths = model(short, torch.tensor([21]))
    together, lengths = model(batch, torch.tensor([21, 51]))
    frames = int(alone_lengths[0])
    assert lengths[0] == frames == expected_length(21, frontend, subsampling)
    assert torch.allclose(together[0, :frames], alone[0], atol=1e-5)


def test_lstm_forget_gates_start_open():
    model = AcousticModel(29, FEATURES, ModelConfig(hidden_size=8, num_layers=2))
    biases = [p for name, p in model.rnn.named_parameters() if "bias_ih" in name]
    assert len(biases) == 4  # 2 layers x 2 directions
    assert all(torch.all(b[8:16] == 1.0) for b in biases)
