"""What an eval runs on: `EvalConfig` (model, backend, quantization, speculation) and the
`--vs KEY=VALUE[,KEY=VALUE]` overrides that turn the base configuration into a variant.

    parse_overrides("backend=vllm")            -> {"backend": "vllm"}
    base.with_overrides({"quant": "int8"})     -> the same configuration with int8 weights

Evals run with speculation off unless `spec=` says otherwise: speculation is meant to be lossless,
so "off" is the reference a `spec=prompt_lookup` variant is checked against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

DEFAULT_MODEL = "smollm2-135m"
BACKENDS = ("native", "hf", "vllm")
QUANT_METHODS = ("rtn", "awq", "gptq")
SPECULATION = ("off", "prompt_lookup")
# quant=int8 / int4 pick the method measured best for that width (docs/quantization.md)
DEFAULT_QUANT_METHOD = {8: "rtn", 4: "awq"}
# quant=gguf: a model converted from a GGUF file served from that file's own blocks (Q4 as int4), as
# `make run` serves the packaged models on a CPU (EngineConfig.quantization "gguf")
GGUF = "gguf"


class ConfigError(ValueError):
    """A `--vs` or base setting that is malformed or names an impossible combination."""


@dataclass(frozen=True)
class Quantization:
    """Weight-only quantization of the model: bits, method and group size (int4 only)."""

    bits: int
    method: str
    group_size: int = 128

    @classmethod
    def parse(cls, text: str) -> "Quantization | None":
        """'none' and 'gguf' (no checkpoint of ours) -> None; 'int8', 'int4', 'int4-gptq', 'int4-rtn-g64' ->
        a Quantization."""
        if text in ("none", GGUF):
            return None
        width, _, rest = text.partition("-")
        if width not in ("int8", "int4"):
            raise ConfigError(f"quant={text}: use none, gguf, int8 or int4 (optionally int4-gptq, int4-rtn-g64, ...)")
        bits = int(width[3:])
        method, _, group = rest.partition("-g")
        method = method or DEFAULT_QUANT_METHOD[bits]
        if method not in QUANT_METHODS:
            raise ConfigError(f"quant={text}: method {method!r} is not one of {', '.join(QUANT_METHODS)}")
        if group and (not group.isdigit() or int(group) not in (32, 64, 128)):
            raise ConfigError(f"quant={text}: group size must be 32, 64 or 128")
        return cls(bits, method, int(group) if group else 128)

    @property
    def name(self) -> str:
        return f"int{self.bits}-{self.method}" + (f"-g{self.group_size}" if self.bits == 4 else "")

    def checkpoint_dir_name(self, model: str) -> str:
        """The folder `vireo quantize` writes by default, so both tools share checkpoints."""
        from vireo.inference.quant.quantize import checkpoint_dir

        return checkpoint_dir(model, self.method, self.bits, self.group_size).name


@dataclass(frozen=True)
class EvalConfig:
    """One configuration an eval runs on."""

    model: str = DEFAULT_MODEL
    backend: str = "native"
    quant: str = "none"
    spec: str = "off"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend={self.backend}: choose one of {', '.join(BACKENDS)}")
        if self.spec not in SPECULATION:
            raise ConfigError(f"spec={self.spec}: choose one of {', '.join(SPECULATION)}")
        if (self.quantization is not None or self.quant == GGUF) and self.backend != "native":
            raise ConfigError(
                f"quant={self.quant} loads our quantizer's checkpoints, which only the native "
                f"engine reads; use backend=native (not {self.backend})"
            )
        if self.spec != "off" and self.backend == "hf":
            raise ConfigError("spec= needs backend=native or vllm (the hf backend does not speculate)")

    @property
    def quantization(self) -> Quantization | None:
        return Quantization.parse(self.quant)

    @property
    def engine_settings(self) -> dict[str, str]:
        """Engine settings this configuration sets beyond its model: quantization "gguf" for quant=gguf
        (a checkpoint of ours names its own quantization)."""
        return {"quantization": GGUF} if self.quant == GGUF else {}

    def with_overrides(self, overrides: dict[str, str]) -> "EvalConfig":
        return replace(self, **overrides)

    def as_dict(self) -> dict:
        quantization = self.quantization
        return {**asdict(self), "quant": quantization.name if quantization else self.quant}

    def differences(self, other: "EvalConfig") -> dict[str, str]:
        """The settings where `other` differs from this configuration."""
        mine, theirs = self.as_dict(), other.as_dict()
        return {key: theirs[key] for key in mine if mine[key] != theirs[key]}


KEYS = tuple(EvalConfig.__dataclass_fields__)


def parse_overrides(text: str) -> dict[str, str]:
    """'backend=vllm,quant=int4' -> {'backend': 'vllm', 'quant': 'int4'}; bad syntax or keys raise."""
    overrides: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"{part!r}: write KEY=VALUE (keys: {', '.join(KEYS)})")
        if key not in KEYS:
            raise ConfigError(f"unknown key {key!r}: use one of {', '.join(KEYS)}")
        if key in overrides:
            raise ConfigError(f"{key} is given twice")
        overrides[key] = value
    if not overrides:
        raise ConfigError(f"nothing to compare: give KEY=VALUE (keys: {', '.join(KEYS)})")
    return overrides


def variant_of(base: EvalConfig, vs: str) -> EvalConfig:
    """The base configuration with the `--vs` overrides; an override that changes nothing is refused."""
    variant = base.with_overrides(parse_overrides(vs))
    if not base.differences(variant):
        raise ConfigError(f"--vs {vs} is the base configuration itself: nothing to compare")
    return variant


def label(config: EvalConfig, base: EvalConfig | None = None) -> str:
    """A file-name-safe name of what differs from `base` (or from the defaults)."""
    changed = (base or EvalConfig()).differences(config)
    return "-".join(f"{key}-{value}".replace("/", "_") for key, value in changed.items())
