"""Which transformers Auto class loads a family's checkpoints: the one place that decides, for the engine and the
demo builder alike."""

from __future__ import annotations

import transformers

from ..core.registry import Family


def auto_model_class(family: Family, text_only: bool = False) -> type:
    """A family that hears loads as a multimodal LM (Qwen3-ASR, Qwen2-Audio), one that sees as image-text-to-text, the
    rest as causal LMs; `text_only` (a fine-tuned model: its text side, as it was trained) is a causal LM always."""
    if text_only:
        return transformers.AutoModelForCausalLM
    if family.retrieval and family.retrieval.kind == "embedding":  # Qwen3-Embedding: the decoder's hidden states, no output head
        return transformers.AutoModel
    if family.audio:
        return transformers.AutoModelForMultimodalLM
    if family.vision:
        return transformers.AutoModelForImageTextToText
    return transformers.AutoModelForCausalLM
