"""Commands that look inside a model: probe-speakers."""

from __future__ import annotations

from asr.cli.common import add_command, examples

TITLE = "research"


def _cmd_probe_speakers(args) -> int:
    from asr.data.dataset import read_manifest
    from asr.model.checkpoint import load_model
    from asr.speakers.probe import ProbeConfig, probe_speakers, untrained_copy

    model = load_model(args.model)
    network = untrained_copy(model.network, args.seed) if args.untrained else None
    config = ProbeConfig(max_utterances=args.max_utterances, steps=args.steps, seed=args.seed)
    result = probe_speakers(model, read_manifest(args.manifest), config, network)
    what = "an untrained copy of " if args.untrained else ""
    print(
        f"speaker probe on {what}{model.path}: {result.speakers} speakers, {result.train_utterances} utterances "
        f"trained it, {result.test_utterances} scored it: frame accuracy {100 * result.frame_accuracy:.1f}% "
        f"(always naming the commonest speaker: {100 * result.majority_accuracy:.1f}%), "
        f"utterance accuracy {100 * result.utterance_accuracy:.1f}%"
    )
    return 0


def register(sub) -> None:
    """Add probe-speakers to ``sub``."""
    p = add_command(
        sub,
        "probe-speakers",
        "measure how well a model's recurrent outputs tell speakers apart",
        "Train a small classifier to name the speaker of each recurrent output frame of some of each "
        "speaker's utterances (the model frozen), and print its accuracy on their other utterances beside "
        "the majority level: a check of speaker-adversarial training ([train] speaker_adversary_weight).",
        examples(
            "asr probe-speakers --model exp/fsdd --manifest data/fsdd/dev.jsonl",
            "asr probe-speakers --model exp/fsdd --manifest data/fsdd/dev.jsonl --untrained",
        ),
    )
    p.add_argument("--model", required=True, help="model.pt or an experiment folder")
    p.add_argument("--manifest", required=True, help='manifest with a "speaker" field (JSON lines)')
    p.add_argument(
        "--untrained",
        action="store_true",
        help="probe a freshly initialised copy of the network instead: what the features alone tell",
    )
    p.add_argument("--max-utterances", type=int, default=600, metavar="N", help="utterances sampled and encoded")
    p.add_argument("--steps", type=int, default=1500, metavar="N", help="training steps of the probe")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample, the split and the probe")
    p.set_defaults(func=_cmd_probe_speakers)
