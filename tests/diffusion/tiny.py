"""Tiny random diffusers models and pipelines, built offline from configs."""

from __future__ import annotations

import torch

WORDS = ["a", "cat", "dog", "walks", "runs", "on", "the", "beach", "snow", "blurry", "bad"]
TEXT_DIM = 32


def word_tokenizer():
    """A word-level tokenizer with the special tokens T5's pipelines use."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def text_encoder():
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=len(WORDS) + 3, d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                        relative_attention_num_buckets=8, relative_attention_max_distance=16)
    return UMT5EncoderModel(config).eval()


def wan_pipeline(cls_name: str = "WanPipeline", seed: int = 0):
    """A Wan text-to-video (or video-to-video) pipeline with random weights: 2 blocks, 2 heads of 12."""
    import diffusers
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel

    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=16, out_channels=16, text_dim=TEXT_DIM, freq_dim=32, ffn_dim=32,
                                        num_layers=2, cross_attn_norm=True, rope_max_seq_len=32)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = getattr(diffusers, cls_name)(tokenizer=word_tokenizer(), text_encoder=text_encoder(),
                                        transformer=transformer.eval(), vae=vae.eval(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ltx_transformer(seed: int = 0):
    from diffusers import LTXVideoTransformer3DModel

    torch.manual_seed(seed)
    return LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                      num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
                                      num_layers=2, caption_channels=TEXT_DIM).eval()


def flux_transformer(seed: int = 0):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                  attention_head_dim=16, num_attention_heads=2, joint_attention_dim=TEXT_DIM,
                                  pooled_projection_dim=TEXT_DIM, axes_dims_rope=[4, 4, 8]).eval()
