"""Training extensions: a custom one plugged into training gets its hooks, and resume restores it."""

import pytest
import torch

from asr.model.checkpoint import safe_load
from asr.train.extensions import TrainingExtensions
from asr.train.loop import train
from asr.train.state import FORMAT_BEFORE_EXTENSIONS, STATE_FILENAME, load_state
from asr.utils.errors import AsrError
from tests.test_train import manifest, tiny_config  # noqa: F401 (manifest: four clips by four speakers, a fixture)

pytestmark = pytest.mark.trains  # every test here trains a model


class EpochCounter:
    """Counts epochs in its state, adds a zero loss, and optimises one parameter that only weight
    decay moves (so it changes only if the optimizer holds it)."""

    name = "epoch_counter"

    def __init__(self):
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.epochs: list[int] = []  # in last.pt
        self.calls: list[tuple] = []  # this process' hook calls, for the test

    def setup(self, run):
        self.calls.append(("setup", run.train_set is not None, len(run.dev_set)))

    def parameters(self):
        return [self.weight]

    def start_epoch(self, epoch, resumed):
        self.calls.append(("start_epoch", epoch, resumed))
        self.epochs.append(epoch)

    def extra_loss(self, encoded, lengths, batch):
        assert encoded.dim() == 3 and encoded.shape[0] == len(batch.indices) == lengths.shape[0]
        self.calls.append(("extra_loss", encoded.shape[0]))
        return 0.0 * self.weight * encoded.float().mean(), {"epoch_counter": float(len(self.epochs))}

    def state_dict(self):
        return {"epochs": list(self.epochs), "weight": self.weight.detach().clone()}

    def load_state_dict(self, state):
        if state is None:
            raise AsrError("epoch_counter: nothing to resume from")
        self.epochs = list(state["epochs"])
        with torch.no_grad():
            self.weight.copy_(state["weight"])


def test_a_custom_extension_gets_its_hooks_and_resumes_with_its_state(manifest, tmp_path):
    straight = EpochCounter()
    train(tiny_config(epochs=3), manifest, manifest, tmp_path / "straight", extensions=[straight])
    assert straight.calls[0] == ("setup", True, 4)
    starts = [call for call in straight.calls if call[0] == "start_epoch"]
    assert starts == [("start_epoch", epoch, False) for epoch in (1, 2, 3)]
    assert [call for call in straight.calls if call[0] == "extra_loss"] == [("extra_loss", 4)] * 3  # a batch an epoch
    assert straight.weight.item() < 1.0  # weight decay moved it: the optimizer holds it

    first, second = EpochCounter(), EpochCounter()
    train(tiny_config(epochs=2), manifest, manifest, tmp_path / "resumed", extensions=[first])
    train(tiny_config(epochs=3), manifest, manifest, tmp_path / "resumed", resume=True, extensions=[second])
    assert second.epochs == [1, 2, 3] and second.calls[1] == ("start_epoch", 3, False)
    assert torch.equal(second.weight, straight.weight)
    a, b = safe_load(tmp_path / "straight" / STATE_FILENAME), safe_load(tmp_path / "resumed" / STATE_FILENAME)
    assert a["extensions"]["epoch_counter"]["epochs"] == b["extensions"]["epoch_counter"]["epochs"] == [1, 2, 3]
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], atol=1e-6), key

    with pytest.raises(AsrError, match="started with the training extension.s. epoch_counter"):
        train(tiny_config(epochs=4), manifest, manifest, tmp_path / "resumed", resume=True)
    train(tiny_config(epochs=1), manifest, manifest, tmp_path / "plain")
    with pytest.raises(AsrError, match="epoch_counter: nothing to resume from"):
        train(tiny_config(epochs=2), manifest, manifest, tmp_path / "plain", resume=True, extensions=[EpochCounter()])


def test_extensions_need_distinct_names_and_both_state_hooks():
    class Nameless:
        pass

    class HalfState:
        name = "half"

        def state_dict(self):
            return {}

    with pytest.raises(ValueError, match="distinct non-empty names"):
        TrainingExtensions([EpochCounter(), EpochCounter()])
    with pytest.raises(ValueError, match="distinct non-empty names"):
        TrainingExtensions([Nameless()])
    with pytest.raises(ValueError, match="state_dict and load_state_dict, or neither"):
        TrainingExtensions([HalfState()])


def test_a_state_written_before_extensions_resumes(manifest, tmp_path):
    """An ``asr-train-state-2`` last.pt kept the adversary and the word cuts under keys of their own."""
    train(tiny_config(epochs=1), manifest, manifest, tmp_path)
    state = safe_load(tmp_path / STATE_FILENAME)
    del state["extensions"]
    torch.save(
        {**state, "format": FORMAT_BEFORE_EXTENSIONS, "adversary": None, "word_cuts": {}}, tmp_path / STATE_FILENAME
    )
    assert load_state(tmp_path)["extensions"] == {}
    result = train(tiny_config(epochs=2), manifest, manifest, tmp_path, resume=True)
    assert result.epochs_run == 2

    adversary = {"classifier.0.weight": torch.zeros(2, 2)}
    for epoch_done, word_crop in ((False, {"word_crop": {0: [800]}}), (True, {})):  # cuts count mid-epoch only
        torch.save(
            {
                "format": FORMAT_BEFORE_EXTENSIONS,
                "epoch_done": epoch_done,
                "adversary": adversary,
                "word_cuts": {0: [800]},
            },
            tmp_path / STATE_FILENAME,
        )
        extensions = load_state(tmp_path)["extensions"]
        assert set(extensions) == {"speaker_adversary", *word_crop}
        assert torch.equal(extensions["speaker_adversary"]["classifier.0.weight"], adversary["classifier.0.weight"])
        assert extensions.get("word_crop") == word_crop.get("word_crop")
