"""llama.py: the Llama decoder (LlamaForCausalLM) in plain PyTorch, written
from the formulas, with Hugging Face's parameter names, so that train.py
needs no transformers and its state dict is a Llama checkpoint: RMSNorm,
half-rotation RoPE with Llama 3.1's frequency scaling (rope_type llama3),
grouped-query causal attention with optional biases on q, k, v and o
(attention_bias), the SwiGLU MLP, and an untied or tied lm_head. The norm,
rotation, MLP, decoder layer and safetensors helpers are the tiny Qwen3's
(qwen3.py).
make_goldens.py checks against transformers' own LlamaForCausalLM where
transformers is installed.
"""
import json
import math
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tiny-qwen3", "scripts"))
from qwen3 import Body, read_safetensors, rotate_half  # noqa: E402


def config(vocab, eot):
    """config is the tiny Llama's config.json: hidden 128, 3 layers, 2 query
    heads and 1 KV head of 64, MLP 192, q/k/v/o biases, untied embeddings,
    and llama3 scaling whose original_max_position_embeddings (64) puts
    head_dim 64's frequencies in all three of its regimes within a short
    prompt."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": True,
        "attention_dropout": 0.0,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 128,
        "initializer_range": 0.02,
        "intermediate_size": 192,
        "max_position_embeddings": 2048,
        "mlp_bias": False,
        "num_attention_heads": 2,
        "num_hidden_layers": 3,
        "num_key_value_heads": 1,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64, "rope_type": "llama3"},
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": vocab,
    }


def inv_freq(c):
    """inv_freq is transformers' _compute_default_rope_parameters, then
    _compute_llama3_parameters where rope_scaling says llama3, in float32:
    wavelengths shorter than original/high_freq_factor are kept, those
    longer than original/low_freq_factor divided by factor, those between
    blended."""
    d = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    inv = 1.0 / c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d)
    s = c.get("rope_scaling")
    if not s:
        return inv
    if s.get("rope_type", s.get("type")) != "llama3":
        raise ValueError(f"rope_scaling {s}: only llama3 is implemented")
    old, lo, hi, factor = s["original_max_position_embeddings"], s["low_freq_factor"], s["high_freq_factor"], s["factor"]
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old / hi) * ~(wavelen > old / lo)
    return torch.where(medium, smoothed, scaled)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        d = c.get("head_dim") or h // c["num_attention_heads"]
        self.heads, self.kv_heads, self.d = c["num_attention_heads"], c["num_key_value_heads"], d
        bias = c.get("attention_bias", False)
        self.q_proj = nn.Linear(h, self.heads * d, bias=bias)
        self.k_proj = nn.Linear(h, self.kv_heads * d, bias=bias)
        self.v_proj = nn.Linear(h, self.kv_heads * d, bias=bias)
        self.o_proj = nn.Linear(self.heads * d, h, bias=bias)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.d)
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        att = torch.softmax(s.float(), dim=-1).to(v.dtype) @ v
        return self.o_proj(att.transpose(1, 2).reshape(b, t, self.heads * self.d))


class Llama(nn.Module):
    """LlamaForCausalLM's computation; config is the config.json dictionary."""

    def __init__(self, config):
        super().__init__()
        if config.get("mlp_bias"):
            raise ValueError("mlp_bias is not implemented")
        self.config = config
        self.model = Body(config, Attention)
        self.tied = config.get("tie_word_embeddings", False)
        if not self.tied:
            self.lm_head = nn.Linear(config["hidden_size"], config["vocab_size"], bias=False)
        self.register_buffer("inv_freq", inv_freq(config), persistent=False)
        std = config["initializer_range"]
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, ids):
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos.to(x.dtype), sin.to(x.dtype))
        head = self.model.embed_tokens.weight if self.tied else self.lm_head.weight
        return self.model.norm(x) @ head.t()

    @classmethod
    def load(cls, d):
        """load reads a float32 model directory."""
        with open(f"{d}/config.json") as f:
            m = cls(json.load(f))
        m.load_state_dict(read_safetensors(f"{d}/model.safetensors"))
        return m.eval()
