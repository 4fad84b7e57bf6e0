"""Model configurations of the MMfreeLM (HGRNBit) family: the one definition of a model's shape.

Source: the official configuration (github ridgerchu/matmulfreellm,
mmfreelm/models/hgrn_bit/configuration_hgrn_bit.py) and the released checkpoints' config.json.
Only the inference-relevant fields are kept; `from_hf_dict` rejects configurations this project
cannot run (short convolutions, several heads, an expansion ratio other than 1) with a message.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A model configuration that this project cannot represent or run."""


def intermediate_size_for(hidden_size: int, hidden_ratio: int = 4) -> int:
    """The official rule: int(d * ratio * 2/3), rounded up to a multiple of 256."""
    i = int(hidden_size * hidden_ratio * 2 / 3)
    return 256 * ((i + 256 - 1) // 256)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    rms_norm_eps: float = 1e-6
    use_lower_bound: bool = True
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int | None = None
    initializer_range: float = 0.02
    max_position_embeddings: int = 2048
    name: str = "custom"

    def __post_init__(self):
        for f in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{f} must be a positive integer, got {v!r}")
        if not (0 < self.rms_norm_eps < 1):
            raise ConfigError(f"rms_norm_eps must be in (0, 1), got {self.rms_norm_eps!r}")

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def d(self) -> int:
        return self.hidden_size

    @property
    def n_layers(self) -> int:
        return self.num_hidden_layers

    def ternary_matrices(self) -> list[tuple[str, int, int]]:
        """(name, rows=out_features, cols=in_features) of every ternary matrix, in model order."""
        d, inter = self.hidden_size, self.intermediate_size
        out = []
        for layer in range(self.num_hidden_layers):
            p = f"model.layers.{layer}."
            out += [
                (p + "attn.i_proj.weight", d, d),
                (p + "attn.f_proj.weight", d, d),
                (p + "attn.g_proj.weight", d, d),
                (p + "attn.o_proj.weight", d, d),
                (p + "mlp.gate_proj.weight", 2 * inter, d),
                (p + "mlp.down_proj.weight", d, inter),
            ]
        out.append(("lm_head.weight", self.vocab_size, d))
        return out

    def n_ternary_weights(self) -> int:
        return sum(r * c for _, r, c in self.ternary_matrices())

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter of the official HGRNBitForCausalLM, with its shape."""
        d = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"model.embeddings.weight": (self.vocab_size, d)}
        if self.use_lower_bound:
            shapes["model.lower_bounds"] = (self.num_hidden_layers, d)
        for name, rows, cols in self.ternary_matrices():
            shapes[name] = (rows, cols)
            shapes[name.removesuffix(".weight") + ".norm.weight"] = (cols,)
        for layer in range(self.num_hidden_layers):
            p = f"model.layers.{layer}."
            shapes[p + "attn_norm.weight"] = (d,)
            shapes[p + "attn.g_norm.weight"] = (d,)
            shapes[p + "mlp_norm.weight"] = (d,)
        shapes["model.norm.weight"] = (d,)
        return shapes

    # -- HF config.json ------------------------------------------------------------------------
    def to_hf_dict(self) -> dict[str, Any]:
        return {
            "architectures": ["HGRNBitForCausalLM"],
            "model_type": "hgrn_bit",
            "attn_mode": "fused_recurrent",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "intermediate_size": self.intermediate_size,
            "hidden_ratio": 4,
            "hidden_act": "swish",
            "num_heads": 1,
            "expand_ratio": 1,
            "use_short_conv": False,
            "conv_size": 4,
            "share_conv_kernel": True,
            "use_lower_bound": self.use_lower_bound,
            "rms_norm_eps": self.rms_norm_eps,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "tie_word_embeddings": False,
            "initializer_range": self.initializer_range,
            "max_position_embeddings": self.max_position_embeddings,
            "use_cache": True,
        }

    @classmethod
    def from_hf_dict(cls, cfg: dict[str, Any], name: str = "custom") -> ModelConfig:
        mt = cfg.get("model_type", "hgrn_bit")
        if mt != "hgrn_bit":
            raise ConfigError(f"model_type is {mt!r}; only 'hgrn_bit' (MMfreeLM) is supported")
        for key in ("vocab_size", "hidden_size", "num_hidden_layers"):
            if key not in cfg:
                raise ConfigError(f"config.json lacks {key!r}")
        if cfg.get("use_short_conv", False):
            raise ConfigError("use_short_conv=true is not supported (the released checkpoints have none)")
        if (cfg.get("num_heads") or 1) != 1 and cfg.get("expand_ratio", 1) != 1:
            raise ConfigError("only num_heads=1 / expand_ratio=1 HGRNBit models are supported")
        if (cfg.get("expand_ratio") or 1) != 1:
            raise ConfigError(f"expand_ratio={cfg['expand_ratio']} is not supported (only 1)")
        if cfg.get("tie_word_embeddings", False):
            raise ConfigError("tie_word_embeddings=true is not supported (MMfreeLM's embedding is untied)")
        hidden = int(cfg["hidden_size"])
        inter = cfg.get("intermediate_size")
        if inter is None:
            inter = intermediate_size_for(hidden, int(cfg.get("hidden_ratio") or 4))
        return cls(
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=hidden,
            num_hidden_layers=int(cfg["num_hidden_layers"]),
            intermediate_size=int(inter),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            use_lower_bound=bool(cfg.get("use_lower_bound", True)),
            bos_token_id=cfg.get("bos_token_id", 1),
            eos_token_id=cfg.get("eos_token_id", 2),
            pad_token_id=cfg.get("pad_token_id"),
            initializer_range=float(cfg.get("initializer_range", 0.02)),
            max_position_embeddings=int(cfg.get("max_position_embeddings", 2048)),
            name=name,
        )

    @classmethod
    def from_json_file(cls, path: str | Path, name: str | None = None) -> ModelConfig:
        path = Path(path)
        try:
            cfg = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_hf_dict(cfg, name=name or path.parent.name)


def _preset(name: str, layers: int, d: int, vocab: int = 32000) -> ModelConfig:
    return ModelConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=layers,
                       intermediate_size=intermediate_size_for(d), name=name)


#: The named models. `demo` is the small model trained in this repository (sw/demo/);
#: 370m/1.3b/2.7b are the released MMfreeLM sizes (DESIGN.md section 2).
PRESETS: dict[str, ModelConfig] = {
    "tiny": _preset("tiny", layers=2, d=64, vocab=256),
    "demo": _preset("demo", layers=4, d=192, vocab=1024),
    "370m": _preset("370m", layers=24, d=1024),
    "1.3b": _preset("1.3b", layers=24, d=2048),
    "2.7b": _preset("2.7b", layers=32, d=2560),
}


#: The smallest model the compiler takes for beats up to 16 (intermediate a multiple of the beat's
#: rows): one layer, d 16, vocab 80 (two lm_head chunks at vlen 64). ~3,500 cycles per token step in
#: the Amaranth simulator; the default model of the iCE40 board build.
MICRO = ModelConfig(vocab_size=80, hidden_size=16, num_hidden_layers=1, intermediate_size=16, name="micro")

#: Test models: shapes for the simulators and small boards, only ever filled with seeded numpy random
#: parameters (sw.artifacts.random_image), never trained or released; not presets of sw.export.
TEST_MODELS: dict[str, ModelConfig] = {"micro": MICRO}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(PRESETS)}") from None
