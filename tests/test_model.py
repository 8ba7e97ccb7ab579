import itertools

import pytest
import torch

from asr.features import FeatureConfig
from asr.model import AcousticModel, ModelConfig

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
        frontend=frontend, subsampling=subsampling, cell=cell, bidirectional=bidirectional,
        num_layers=2, hidden_size=16, conv_channels=4,
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
    from asr.augment import AugmentConfig

    model = AcousticModel(29, FEATURES, ModelConfig(hidden_size=8, num_layers=1), AugmentConfig(freq_masks=2, time_masks=2, freq_warp=0.2))
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
