"""A tiny randomly initialised CLIP, built offline from a config (no download).

Two-layer text and vision towers, 32x32 images, a 64-d projection and a byte-level BPE
vocabulary of 516 tokens, saved with save_pretrained so it loads exactly as a real
checkpoint would. Needs torch and transformers (the clip extra).
"""

from __future__ import annotations

import json
from pathlib import Path

PROJECTION_DIM = 64


def _byte_level_vocab() -> tuple[dict[str, int], list[str]]:
    """CLIP's BPE alphabet (the 256 byte symbols, alone and word-final), two merges and the
    start/end tokens: enough to tokenise any text, built offline."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    symbols = [chr(c) for c in codes]
    merges = ["t h", "th e</w>"]
    tokens = symbols + [s + "</w>" for s in symbols] + ["th", "the</w>",
                                                        "<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tiny_clip(target: Path) -> Path:
    """Save a tiny CLIP checkpoint (config, weights, preprocessor, tokenizer) to ``target``;
    its directory name becomes the model name: ``clip/<name>``."""
    import torch  # here, not at import: collecting the tests must not load torch
    import transformers

    vocab, merges = _byte_level_vocab()
    tokenizer_src = target.parent / (target.name + "-tokenizer-src")
    tokenizer_src.mkdir(parents=True)
    (tokenizer_src / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tokenizer_src / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n",
                                              encoding="utf-8")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(tokenizer_src))

    torch.manual_seed(1234)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=PROJECTION_DIM,
    )
    model = transformers.CLIPModel(config).eval()
    processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32},
                                                crop_size={"height": 32, "width": 32})
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    processor.save_pretrained(target)
    return target




def install_in_hf_cache(model_dir: Path, cache: Path, repo_id: str,
                        commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Put a saved checkpoint into a Hugging Face hub cache (HF_HUB_CACHE) as ``repo_id``
    would be after a download: ``models--org--name/snapshots/<commit>/...`` and
    ``refs/main`` naming that commit. Returns the snapshot directory."""
    import shutil

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot
