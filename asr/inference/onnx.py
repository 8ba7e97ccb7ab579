"""Export a packaged model's acoustic network to ONNX (float32 and/or int8) and run it with onnxruntime.

An export is a folder, like a sherpa-onnx model folder::

    model.onnx         the network on log-mel features (float32)
    model.int8.onnx    the same with int8 weights (onnxruntime dynamic quantization), when asked for
    config.json        what decoding needs: vocabulary and tokenizer, feature and model settings,
                       the normaliser's statistics, the decoder settings, the model's metadata
    words.arpa ...     copies of the LM and lexicon the decoder settings name (relative paths)
    bpe.model          the sentencepiece model, for a BPE tokenizer

The graph takes ``features: (B, T, n_mels)`` float32 log-mel features (torchaudio's, as
:class:`asr.features.logmel.LogMel` computes them: features stay in torch) and
``lengths: (B,)`` int64, both with dynamic batch and time axes, and returns
``log_probs: (B, T', V)`` and ``out_lengths: (B,)``, exactly as
:meth:`asr.model.acoustic.AcousticModel.forward` does: normalisation, front end, recurrent
stack (the backward direction reads each utterance reversed within its own length, so
padding changes nothing) and the CTC head are all in the graph.

:func:`load_onnx_model` gives a :class:`asr.model.checkpoint.PackagedModel` whose ``network``
runs onnxruntime, so transcription, evaluation and LM tuning use it as they use a torch model,
with the same decoders. Inference only: speaker adaptation and probing need the torch model.

Exporting needs the ``onnx`` package and onnxruntime (``pip install 'asr[onnx]'``); running an
export needs onnxruntime only. The TorchScript exporter (``dynamo=False``) is used: the dynamo
exporter of torch 2.11 cannot export the LSTMs over a dynamic time axis.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from asr.data.text import BpeTokenizer, Tokenizer, tokenizer_from_state
from asr.features.logmel import FeatureConfig, Normalizer
from asr.inference.export import copy_decoder_files
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.model.checkpoint import PackagedModel, load_model
from asr.utils.atomic import atomic_open
from asr.utils.config import dataclass_from_dict
from asr.utils.errors import AsrError

ONNX_FORMAT = "asr-onnx-1"
CONFIG_FILENAME = "config.json"
FILENAMES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}  # precision -> file in the export folder
BPE_FILENAME = "bpe.model"
OPSET = 17
INPUTS, OUTPUTS = ["features", "lengths"], ["log_probs", "out_lengths"]
EXPORT_TOLERANCE = 1e-3  # largest log-probability difference from torch accepted when checking an export


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise AsrError(f"the {module} package is not installed: pip install 'asr[onnx]' (onnx, onnxruntime)") from None


def export_onnx(
    model: PackagedModel | str | Path | None, out_dir: str | Path, int8: bool = False, fp32: bool = True
) -> list[Path]:
    """Write ``out_dir/model.onnx`` (``fp32``), ``out_dir/model.int8.onnx`` (``int8``), ``config.json``
    and the decoder's files; returns the ONNX files written. ``model``: a loaded packaged model, or a
    model file or experiment directory (None: the shipped English model).

    Each file is checked against the torch network on a padded batch before it is kept: float32
    within :data:`EXPORT_TOLERANCE`, int8 with the same output lengths and finite log-probabilities.
    """
    if not (int8 or fp32):
        raise AsrError("nothing to export: ask for float32, int8 or both")
    _require("onnx")
    _require("onnxruntime")
    if not isinstance(model, PackagedModel):
        model = load_model(model)
    network = model.network
    if not isinstance(network, AcousticModel):
        raise AsrError("only a torch model can be exported (this one is already an ONNX export)")
    if int8 and network.config.cell != "lstm":
        raise AsrError(
            f"int8 export quantizes LSTM layers (onnxruntime has no int8 {network.config.cell.upper()}): "
            "export this model in float32"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graph = _torch_to_onnx(network)
    written = {}
    with tempfile.TemporaryDirectory(prefix="asr-onnx-") as scratch:
        fp32_path = Path(scratch) / FILENAMES["fp32"]
        fp32_path.write_bytes(graph)
        _check(fp32_path, network, exact=True)
        if fp32:
            written["fp32"] = _write(out / FILENAMES["fp32"], graph)
        if int8:
            int8_path = Path(scratch) / FILENAMES["int8"]
            _quantize(fp32_path, int8_path)
            _check(int8_path, network, exact=False)
            written["int8"] = _write(out / FILENAMES["int8"], int8_path.read_bytes())
    for precision, name in FILENAMES.items():  # an earlier export's other file would not match this one
        if precision not in written:
            (out / name).unlink(missing_ok=True)
    folder = model.path.parent if model.path is not None else out
    config = {
        "format": ONNX_FORMAT,
        "models": {precision: path.name for precision, path in written.items()},
        "default": "int8" if "int8" in written else "fp32",
        "inputs": {"features": "float32 (batch, time, n_mels): log-mel features", "lengths": "int64 (batch,)"},
        "outputs": {"log_probs": "float32 (batch, frames, vocabulary)", "out_lengths": "int64 (batch,)"},
        "opset": OPSET,
        "feature_config": _asdict(network.feature_config),
        "model_config": _asdict(network.config),
        "normalizer": {
            "mode": network.normalizer.mode,
            "mean": network.normalizer.mean.tolist(),
            "std": network.normalizer.std.tolist(),
        },
        "vocabulary": list(model.tokenizer.vocabulary),
        "tokenizer": _tokenizer_entry(model.tokenizer, out),
        "decoder": copy_decoder_files(model.decoder_settings, folder, out),
        "metadata": model.metadata,
        "source": str(model.path) if model.path is not None else None,
        "torch_version": torch.__version__,
    }
    with atomic_open(out / CONFIG_FILENAME) as handle:
        handle.write((json.dumps(config, indent=1, ensure_ascii=False, default=_plain) + "\n").encode("utf-8"))
    return list(written.values())


def _asdict(config) -> dict:
    from dataclasses import asdict

    return asdict(config)


def _plain(value: Any):
    """JSON for what metadata may hold beyond plain values."""
    if torch.is_tensor(value):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in {CONFIG_FILENAME}")


def _tokenizer_entry(tokenizer: Tokenizer, out: Path) -> dict:
    if isinstance(tokenizer, BpeTokenizer):
        with atomic_open(out / BPE_FILENAME) as handle:
            handle.write(tokenizer.model_proto)
        return {"kind": "bpe", "model": BPE_FILENAME}
    return tokenizer.state()


def _write(path: Path, data: bytes) -> Path:
    with atomic_open(path) as handle:
        handle.write(data)
    return path


def _example(network: AcousticModel, frames: int = 97) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of three utterances of different lengths (the trace must not fix any of them)."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, frames, network.feature_config.n_mels, generator=generator)
    return features, torch.tensor([frames, frames * 2 // 3, 5])


def _torch_to_onnx(network: AcousticModel) -> bytes:
    """The network as an ONNX graph (TorchScript exporter) with dynamic batch and time axes."""
    buffer = io.BytesIO()
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(
                network,
                _example(network),
                buffer,
                input_names=INPUTS,
                output_names=OUTPUTS,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
                dynamic_axes={
                    "features": {0: "batch", 1: "time"},
                    "lengths": {0: "batch"},
                    "log_probs": {0: "batch", 1: "frames"},
                    "out_lengths": {0: "batch"},
                },
            )
    finally:
        network.train(was_training)
    return buffer.getvalue()


def _quantize(source: Path, target: Path) -> None:
    """int8 weights for the LSTM layers (onnxruntime dynamic quantization: each layer's input is
    quantized on the fly, per tensor, so an utterance's int8 outputs depend slightly on its batch
    mates).

    Weights get a scale per output row (``per_channel``): one scale per direction let round
    sixteen's English model drift twice as far from float32 (mean L1 distance between the frames'
    token distributions on 20 LJ Speech and 20 FSDD test clips: 0.0159 against 0.0087; frames whose
    best token differs: 0.70 % against 0.36 %), and its beam WER on its test clips (100 FSDD, 100 LJ
    Speech; 1,761 words) rose 0.91 points instead of 0.05. The output layer stays float32: it is
    about 1 % of the work, and quantizing it too took an earlier model a third further from
    float32 (0.0088 without, 0.0119 with)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "please consider pre-processing", notes from shape inference
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM"], per_channel=True)
    finally:
        root.setLevel(level)


def _check(path: Path, network: AcousticModel, exact: bool) -> None:
    """Run the ONNX file and the torch network on a padded batch other than the traced one."""
    session = _session(path, threads=1)
    features, lengths = _example(network, frames=131)
    with torch.inference_mode():
        expected, expected_lengths = network(features, lengths)
    got, got_lengths = session.run(OUTPUTS, {"features": features.numpy(), "lengths": lengths.numpy()})
    got = torch.from_numpy(got)
    if not torch.equal(torch.from_numpy(got_lengths), expected_lengths) or got.shape != expected.shape:
        raise AsrError(f"the ONNX export ({path.name}) does not give the torch model's output shapes")
    valid = torch.arange(got.shape[1])[None, :] < expected_lengths[:, None]  # (B, T')
    difference = (got - expected).abs()[valid].max().item()
    if not math.isfinite(difference) or (exact and difference > EXPORT_TOLERANCE):
        raise AsrError(
            f"the ONNX export ({path.name}) differs from the torch model by {difference:.3g} in log-probability"
        )


def _session(path: Path, threads: int):
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    # threads that wait for work sleep instead of spinning (see asr.utils.threads): on this project's
    # shared 2-core machine (load 6.5), 20 LJ Speech clips through the int8 model on 2 threads took
    # 0.57 s sleeping and 1.33 s spinning (1 thread: 0.74 s either way)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxNetwork:
    """An exported network run by onnxruntime on the CPU, with the part of
    :class:`asr.model.acoustic.AcousticModel` that inference uses: called on ``features (B, T, F)``
    and ``lengths (B,)`` torch tensors it returns ``log_probs (B, T', V)`` and ``lengths (B,)``;
    ``feature_config``, ``config`` and ``normalizer`` (its mode and statistics) are the exported model's."""

    training = False

    def __init__(
        self,
        path: Path,
        feature_config: FeatureConfig,
        config: ModelConfig,
        normalizer: Normalizer,
        threads: int | None = None,
    ):
        self.path = Path(path)
        self.feature_config = feature_config
        self.config = config
        self.normalizer = normalizer
        self.threads = threads or torch.get_num_threads()  # the CLI sets torch's (--threads) before loading
        self.session = _session(self.path, self.threads)

    def __call__(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feed = {
            "features": features.detach().to("cpu", torch.float32).contiguous().numpy(),
            "lengths": lengths.detach().to("cpu", torch.int64).contiguous().numpy(),
        }
        log_probs, out_lengths = self.session.run(OUTPUTS, feed)
        return torch.from_numpy(log_probs), torch.from_numpy(out_lengths)

    def eval(self) -> OnnxNetwork:
        return self

    def train(self, mode: bool = True) -> OnnxNetwork:
        if mode:
            raise AsrError(f"{self.path}: an ONNX export runs inference only (use the torch model.pt to train)")
        return self

    def parameters(self):
        raise AsrError(
            f"{self.path}: an ONNX export runs inference only: speaker adaptation and probing "
            "need the torch model (model.pt)"
        )

    def encode(self, features: torch.Tensor, lengths: torch.Tensor):
        self.parameters()

    @property
    def frame_shift_seconds(self) -> float:
        return self.feature_config.hop_ms / 1000 * self.config.subsampling


def onnx_export_config(path: str | Path) -> Path | None:
    """The ``config.json`` of the ONNX export ``path`` is (a folder) or is in (one of its
    ``.onnx`` files); None when ``path`` is not an ONNX export."""
    path = Path(path)
    folder = path.parent if path.suffix == ".onnx" else path
    config = folder / CONFIG_FILENAME
    if not config.is_file():
        return None
    try:
        return config if json.loads(config.read_text(encoding="utf-8")).get("format") == ONNX_FORMAT else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def load_onnx_model(path: str | Path, threads: int | None = None, precision: str | None = None) -> PackagedModel:
    """An ONNX export (its folder, or one of its ``.onnx`` files) as a :class:`PackagedModel` whose
    network runs onnxruntime with ``threads`` intra-op threads (default: torch's number of threads).

    ``precision`` (``"fp32"`` or ``"int8"``) picks the file in a folder holding both; by default the
    folder's ``default`` (int8 when it was exported). Features (torchaudio), tokenizer and
    decoders are those of the torch model.
    """
    path = Path(path)
    config_path = onnx_export_config(path)
    if config_path is None:
        raise AsrError(f"{path}: not an asr ONNX export (no {CONFIG_FILENAME} of format {ONNX_FORMAT!r})")
    folder = config_path.parent
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        models = config["models"]
        if path.suffix == ".onnx":
            onnx_file = path
        else:
            precision = precision or config["default"]
            if precision not in models:
                raise AsrError(f"{folder}: no {precision} model in this export (it has {', '.join(models)})")
            onnx_file = folder / models[precision]
        if not onnx_file.is_file():
            raise AsrError(f"{onnx_file}: no such file")
        features = dataclass_from_dict(FeatureConfig, config["feature_config"], f"{config_path} feature_config")
        model_config = dataclass_from_dict(ModelConfig, config["model_config"], f"{config_path} model_config")
        normalizer = Normalizer(config["normalizer"]["mode"], features.n_mels)
        normalizer.mean.copy_(torch.tensor(config["normalizer"]["mean"]))
        normalizer.std.copy_(torch.tensor(config["normalizer"]["std"]))
        state = dict(config["tokenizer"])
        if state.get("kind") == "bpe":
            state["model"] = torch.frombuffer(bytearray((folder / state["model"]).read_bytes()), dtype=torch.uint8)
        tokenizer = tokenizer_from_state(state, config["vocabulary"])
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise AsrError(f"{config_path}: damaged ONNX export settings ({type(err).__name__}: {err})") from None
    network = OnnxNetwork(onnx_file, features, model_config, normalizer, threads)
    return PackagedModel(network, tokenizer, config.get("metadata", {}), config.get("decoder"), onnx_file)
