"""An `EvalConfig` as the engine sees it: an `EngineConfig` for in-process runs, `VIREO_*`
variables for a platform worker. A quantized configuration's checkpoint is written on first use
(by our quantizer, into the same folder `vireo quantize` uses) and reused after that."""

from __future__ import annotations

from pathlib import Path

from vireo.inference.local import EngineConfig
from vireo.tools.evals.configs import EvalConfig, Quantization


def quantized_checkpoint(model: str, quantization: Quantization, home: Path) -> Path:
    """The folder of `model` quantized as asked, made now if it does not exist yet."""
    from vireo.inference.quant.quantize import ensure_checkpoint

    return ensure_checkpoint(model, quantization.method, quantization.bits, quantization.group_size, home)


def model_to_load(config: EvalConfig, home: Path) -> str:
    """A registry name, or the quantized checkpoint's folder."""
    quantization = config.quantization
    return config.model if quantization is None else str(quantized_checkpoint(config.model, quantization, home))


def engine_config(config: EvalConfig) -> EngineConfig:
    """The platform's engine settings (`Settings.engine`) with this configuration's backend, model,
    weights and speculation, checked like the settings themselves."""
    from vireo.platform.settings import get_settings

    settings = get_settings()
    return EngineConfig.model_validate(
        {
            **settings.engine.model_dump(),
            "backend": config.backend,
            "model": model_to_load(config, settings.home),
            **config.engine_settings,
            "speculation": config.spec,
        }
    )


def worker_environment(config: EvalConfig) -> dict[str, str]:
    """The `VIREO_*` variables that make a worker serve this configuration."""
    from vireo.platform.settings import get_settings

    return {
        "VIREO_ENGINE": config.backend,
        "VIREO_MODEL": model_to_load(config, get_settings().home),
        "VIREO_SPECULATION": config.spec,
        **{f"VIREO_{key.upper()}": value for key, value in config.engine_settings.items()},
    }
