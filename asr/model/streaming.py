"""Run a unidirectional :class:`~asr.model.acoustic.AcousticModel` as the features arrive.

Each stage keeps what its next output still needs and nothing else: the conv front end the
one or two input frames a stride-2 window shares with the next, frame stacking the frames of
an unfinished group, the look-ahead its last ``lookahead_frames`` frames, the LSTM stack each
layer's state ``(h, c)``. An output frame comes out as soon as every input it depends on is in,
and the frames a stream yields equal the whole-utterance network's on the same features up to
float rounding (the end is padded with zeros, as the offline model pads an utterance).
"""

from __future__ import annotations

import torch
from torch import nn

from asr.model.acoustic import AcousticModel, join_frames
from asr.utils.errors import AsrError

FRAMEWISE_NORMALIZATIONS = ("global", "speaker", "none")  # normalisations that need no later frames


def check_streamable(network: AcousticModel) -> None:
    """Raise :class:`AsrError` saying why ``network`` cannot run as a stream, if it cannot."""
    if network.config.bidirectional:
        raise AsrError(
            "this model is bidirectional: its backward LSTM starts from the end of the audio, so it "
            "cannot run as a stream; train one with [model] bidirectional = false and a small "
            "lookahead_frames (recipes/fsdd/conf_streaming.toml)"
        )
    if network.normalizer.mode not in FRAMEWISE_NORMALIZATIONS:
        raise AsrError(
            f"this model normalises by statistics of the whole utterance ({network.normalizer.mode!r}), "
            "so it cannot run as a stream"
        )


class StreamingNetwork:
    """Feature frames ``(T, n_mels)`` in, new CTC log-probabilities ``(T', vocab)`` out, one utterance."""

    def __init__(self, network: AcousticModel):
        check_streamable(network)
        self.network = network.eval()
        config = network.config
        if config.frontend == "conv":
            self.frontend: _ConvStream | _StackStream = _ConvStream(
                network.frontend.convs, network.feature_config.n_mels
            )
        else:
            self.frontend = _StackStream(config.subsampling, network.feature_config.n_mels)
        self.ahead = config.lookahead_frames
        self.waiting = torch.zeros(1, 0, network.frontend.output_size)  # (1, n, D): front-end frames not yet
        # joined with their look-ahead
        self.states: list = [None] * config.num_layers  # each layer's recurrent state

    @torch.inference_mode()
    def accept(self, features: torch.Tensor) -> torch.Tensor:
        """``features: (T, n_mels)`` -> the log-probabilities ``(T', vocab)`` now computable."""
        x = self.network.normalizer(features.unsqueeze(0), torch.tensor([len(features)]))  # (1, T, F)
        return self._recurrent(self.frontend.accept(x), final=False)

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """The last log-probabilities ``(T', vocab)``: the front end and the look-ahead padded with zeros."""
        return self._recurrent(self.frontend.finish(), final=True)

    def _recurrent(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        """Front-end frames ``(1, n, D)`` -> log-probabilities ``(T', vocab)`` through look-ahead, RNN, output."""
        x = torch.cat([self.waiting, x], dim=1)
        if final:
            x = nn.functional.pad(x, (0, 0, 0, self.ahead))  # the zeros the offline look-ahead sees past the end
        ready = max(0, x.shape[1] - self.ahead)
        self.waiting = x[:, ready:]
        if ready == 0:
            return torch.zeros(0, self.network.output.out_features)
        x = join_frames(x, ready, self.ahead)  # (1, ready, D * (ahead + 1))
        for depth, directions in enumerate(self.network.rnn.layers):
            x, self.states[depth] = directions[0](x, self.states[depth])  # dropout: identity in eval mode
        return self.network.classify(x)[0]  # (ready, vocab)


class _StackStream:
    """:class:`~asr.model.acoustic.StackFrontEnd` as a stream: ``(1, T, F)`` -> ``(1, T // k, k * F)``."""

    def __init__(self, factor: int, n_mels: int):
        self.factor = factor
        self.rest = torch.zeros(1, 0, n_mels)  # (1, < factor, F): an unfinished group

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.rest, x], dim=1)
        whole = x.shape[1] - x.shape[1] % self.factor
        self.rest = x[:, whole:]
        return x[:, :whole].reshape(1, whole // self.factor, self.factor * x.shape[2])

    def finish(self) -> torch.Tensor:
        """The last group, completed with zero frames as the offline front end pads it."""
        return self.accept(self.rest.new_zeros(1, (-self.rest.shape[1]) % self.factor, self.rest.shape[2]))


class _ConvStream:
    """:class:`~asr.model.acoustic.ConvFrontEnd` as a stream: ``(1, T, F)`` -> ``(1, T', C * F')``.

    Output ``t`` of a 3x3 stride-2 convolution reads input frames ``2t - 1 .. 2t + 1``, with zero
    frames at ``-1`` and past the end (the offline padding); each layer keeps its inputs from
    ``2t - 1`` on, ``t`` being its next output.
    """

    def __init__(self, convs: nn.ModuleList, n_mels: int):
        self.convs = convs
        self.n_mels = n_mels
        self.pending: list[torch.Tensor | None] = [None] * len(convs)  # per layer: inputs (1, C_in, n, F_in)

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x.unsqueeze(1), final=False)

    def finish(self) -> torch.Tensor:
        return self._run(torch.zeros(1, 1, 0, self.n_mels), final=True)

    def _run(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        """New inputs ``(1, 1, T, F)`` -> outputs ``(1, T', C * F')`` through every layer."""
        for layer, conv in enumerate(self.convs):
            pending = self.pending[layer]
            if pending is None:  # the first input: the zero frame at -1 goes first
                pending = x.new_zeros(x.shape[:2] + (1,) + x.shape[3:])
            x = torch.cat([pending, x], dim=2)
            if final:
                x = torch.cat([x, torch.zeros_like(x[:, :, :1])], dim=2)
            count = max(0, (x.shape[2] - 3) // 2 + 1)  # windows of 3 frames, stride 2, now complete
            self.pending[layer] = x[:, :, 2 * count :]
            if count:
                window = x[:, :, : 2 * count + 1]
                x = torch.relu(nn.functional.conv2d(window, conv.weight, conv.bias, stride=2, padding=(0, 1)))
            else:
                x = x.new_zeros(1, conv.out_channels, 0, (x.shape[3] - 1) // 2 + 1)
        return x.permute(0, 2, 1, 3).flatten(2)
