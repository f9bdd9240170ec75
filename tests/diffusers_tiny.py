"""Tiny random diffusers video pipelines built in-process (no downloads), for the adapter tests.

Each builder follows the component configs of diffusers' own fast tests
(tests/pipelines/*/test_*.py, get_dummy_components), with the tokenizers made
from an in-memory vocabulary (transformers 5 tokenizer classes accept one)
instead of the hub's tiny-random checkpoints. Every model is seeded, in eval
mode and float32, so a build is the same each time.

``TINY[name]`` gives, for each pipeline: the builder, the vidgen family, the
task it serves, a request size it can make, and the pipeline keyword arguments
the tiny configs need (short text sequences).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import diffusers
import torch
import transformers
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    LlamaConfig,
    LlamaModel,
    T5Config,
    T5EncoderModel,
)

from vidgen.types import Task

WORDS = ("a", "red", "circle", "moving", "right", "blue", "square", "dance", "monkey", "cat")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
TEXT_LEN = 16  # the tiny models' text sequence length (max_sequence_length / model_max_length)


def t5_tokenizer() -> Any:
    """A Unigram T5 tokenizer over a few words and the letters."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    vocab += [("\u2581" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in LETTERS]
    return transformers.T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=TEXT_LEN)


def clip_tokenizer() -> Any:
    """A BPE CLIP tokenizer over the letters (no merges)."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TEXT_LEN)


def llama_tokenizer() -> Any:
    """A BPE Llama tokenizer over the letters (no merges)."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab["\u2581" + c] = len(vocab)
    tok = transformers.LlamaTokenizer(vocab=vocab, merges=[], model_max_length=TEXT_LEN)
    tok.pad_token = "<unk>"
    return tok


def t5_encoder(width: int = 32) -> Any:
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(t5_tokenizer()), d_model=width, d_kv=8, d_ff=37,
                      num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(config).eval()


def clip_text(width: int, layers: int = 2, projection: int = 32) -> Any:
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(clip_tokenizer()), hidden_size=width,
                            intermediate_size=16, num_hidden_layers=layers, num_attention_heads=2,
                            max_position_embeddings=77, projection_dim=projection,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_act="gelu")
    return CLIPTextModel(config).eval()


def clip_vision(width: int, image_size: int, patch_size: int = 1) -> Any:
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=width, projection_dim=width, num_hidden_layers=2,
                              num_attention_heads=2, image_size=image_size, intermediate_size=16,
                              patch_size=patch_size)
    return CLIPVisionModelWithProjection(config).eval()


def _t5_parts() -> dict[str, Any]:
    return {"text_encoder": t5_encoder(), "tokenizer": t5_tokenizer()}


def _eval(components: dict[str, Any]) -> dict[str, Any]:
    for value in components.values():
        if isinstance(value, torch.nn.Module):
            value.eval()
    return components


# --- CogVideoX -----------------------------------------------------------------------------


def _cogvideox_vae() -> Any:
    torch.manual_seed(0)
    return diffusers.AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
        latent_channels=4, layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)


def _cogvideox(cls: str, image: bool = False) -> Any:
    torch.manual_seed(0)
    extra: dict[str, Any] = ({"use_rotary_positional_embeddings": True,
                              "use_learned_positional_embeddings": True} if image else {})
    transformer = diffusers.CogVideoXTransformer3DModel(
        num_attention_heads=2 if image else 4, attention_head_dim=16 if image else 8,
        in_channels=8 if image else 4, out_channels=4, time_embed_dim=2, text_embed_dim=32,
        num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=TEXT_LEN, **extra)
    return getattr(diffusers, cls)(**_eval({
        "transformer": transformer, "vae": _cogvideox_vae(), "scheduler": diffusers.DDIMScheduler(),
        **_t5_parts()}))


# --- LTX-Video -----------------------------------------------------------------------------


def _ltx(cls: str) -> Any:
    torch.manual_seed(0)
    transformer = diffusers.LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=32)
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False, patch_size=1, patch_size_t=1, encoder_causal=True,
        decoder_causal=False)
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return getattr(diffusers, cls)(**_eval({
        "transformer": transformer, "vae": vae,
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(), **_t5_parts()}))


# --- Wan 2.1 -------------------------------------------------------------------------------


def _wan(cls: str) -> Any:
    image = cls == "WanImageToVideoPipeline"
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1],
                                     num_res_blocks=1, temperal_downsample=[False, True, True])
    torch.manual_seed(0)
    transformer = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
        in_channels=36 if image else 16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, **({"image_dim": 4} if image else {}))
    components: dict[str, Any] = {
        "transformer": transformer, "vae": vae,
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0), **_t5_parts()}
    if cls != "WanVideoToVideoPipeline":
        components["transformer_2"] = None
    if image:
        components["image_encoder"] = clip_vision(4, 32)
        components["image_processor"] = CLIPImageProcessor(crop_size=32, size=32)
    return getattr(diffusers, cls)(**_eval(components))


# --- HunyuanVideo --------------------------------------------------------------------------


def _hunyuan_video() -> Any:
    torch.manual_seed(0)
    transformer = diffusers.HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1,
        guidance_embeds=True, text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4))
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
        layers_per_block=1, act_fn="silu", norm_num_groups=4, scaling_factor=0.476986,
        spatial_compression_ratio=8, temporal_compression_ratio=4, mid_block_add_attention=True)
    tokenizer = llama_tokenizer()
    torch.manual_seed(0)
    text_encoder = LlamaModel(LlamaConfig(
        bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=16, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tokenizer), hidden_act="gelu"))
    return diffusers.HunyuanVideoPipeline(**_eval({
        "transformer": transformer, "vae": vae,
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0),
        "text_encoder": text_encoder, "tokenizer": tokenizer,
        "text_encoder_2": clip_text(8), "tokenizer_2": clip_tokenizer()}))


# --- Mochi ---------------------------------------------------------------------------------


def _mochi() -> Any:
    torch.manual_seed(0)
    transformer = diffusers.MochiTransformer3DModel(
        patch_size=2, num_attention_heads=2, attention_head_dim=8, num_layers=2,
        pooled_projection_dim=16, in_channels=12, out_channels=None, qk_norm="rms_norm",
        text_embed_dim=32, time_embed_dim=4, activation_fn="swiglu", max_sequence_length=TEXT_LEN)
    transformer.pos_frequencies.data = transformer.pos_frequencies.new_full(
        transformer.pos_frequencies.shape, 0)
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLMochi(
        latent_channels=12, out_channels=3, encoder_block_out_channels=(32, 32, 32, 32),
        decoder_block_out_channels=(32, 32, 32, 32), layers_per_block=(1, 1, 1, 1, 1))
    return diffusers.MochiPipeline(**_eval({
        "transformer": transformer, "vae": vae,
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(), **_t5_parts()}))


# --- Latte ---------------------------------------------------------------------------------


def _latte() -> Any:
    torch.manual_seed(0)
    transformer = diffusers.LatteTransformer3DModel(
        sample_size=16, num_layers=1, patch_size=2, attention_head_dim=8, num_attention_heads=3,
        caption_channels=32, in_channels=4, cross_attention_dim=24, out_channels=8,
        attention_bias=True, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6)
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=(8,), norm_num_groups=2,
                                  down_block_types=["DownEncoderBlock2D"],
                                  up_block_types=["UpDecoderBlock2D"], latent_channels=4)
    return diffusers.LattePipeline(**_eval({
        "transformer": transformer, "vae": vae, "scheduler": diffusers.DDIMScheduler(),
        **_t5_parts()}))


# --- UNet families: AnimateDiff, ModelScope, I2VGen-XL, SVD ---------------------------------


def _sd_vae(channels: tuple[int, ...] = (8,)) -> Any:
    torch.manual_seed(0)
    return diffusers.AutoencoderKL(
        block_out_channels=channels, in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels), latent_channels=4,
        norm_num_groups=2)


def _ddim() -> Any:
    return diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012,
                                   beta_schedule="scaled_linear", clip_sample=False,
                                   set_alpha_to_one=False)


def _animatediff(cls: str) -> Any:
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 8), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
        norm_num_groups=2)
    torch.manual_seed(0)
    motion_adapter = diffusers.MotionAdapter(
        block_out_channels=(8, 8), motion_layers_per_block=1, motion_norm_num_groups=2,
        motion_num_attention_heads=4)
    return getattr(diffusers, cls)(**_eval({
        "unet": unet, "scheduler": _ddim(), "vae": _sd_vae((8, 8)),
        "motion_adapter": motion_adapter, "text_encoder": clip_text(8),
        "tokenizer": clip_tokenizer(), "feature_extractor": None, "image_encoder": None}))


def _modelscope(cls: str) -> Any:
    torch.manual_seed(0)
    unet = diffusers.UNet3DConditionModel(
        block_out_channels=(8, 8), layers_per_block=1, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=4,
        attention_head_dim=4, norm_num_groups=2)
    return getattr(diffusers, cls)(**_eval({
        "unet": unet, "scheduler": _ddim(), "vae": _sd_vae(), "text_encoder": clip_text(4),
        "tokenizer": clip_tokenizer()}))


def _i2vgen_xl() -> Any:
    from diffusers.models.unets import I2VGenXLUNet

    torch.manual_seed(0)
    unet = I2VGenXLUNet(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=4,
        attention_head_dim=4, num_attention_heads=None, norm_num_groups=2)
    return diffusers.I2VGenXLPipeline(**_eval({
        "unet": unet, "scheduler": _ddim(), "vae": _sd_vae(), "text_encoder": clip_text(4),
        "tokenizer": clip_tokenizer(), "image_encoder": clip_vision(4, 32),
        "feature_extractor": CLIPImageProcessor(crop_size=32, size=32)}))


def _svd() -> Any:
    torch.manual_seed(0)
    unet = diffusers.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=8,
        out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal",
                                          "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=8, projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32)
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        interpolation_type="linear", num_train_timesteps=1000, prediction_type="v_prediction",
        sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
        timestep_type="continuous", use_karras_sigmas=True)
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], latent_channels=4)
    return diffusers.StableVideoDiffusionPipeline(**_eval({
        "unet": unet, "image_encoder": clip_vision(32, 224, patch_size=14), "scheduler": scheduler,
        "vae": vae, "feature_extractor": CLIPImageProcessor(crop_size=224, size=224)}))


# --- the table the tests iterate -----------------------------------------------------------


@attrs.frozen
class Tiny:
    """One tiny pipeline: how to build it and a request it can serve."""

    build: Callable[[], Any]
    family: str
    task: Task
    frames: int
    size: int  # height = width
    call_kwargs: dict[str, Any] = attrs.field(factory=dict)


_SEQ = {"max_sequence_length": TEXT_LEN}

TINY: dict[str, Tiny] = {
    "cogvideox-t2v": Tiny(lambda: _cogvideox("CogVideoXPipeline"), "cogvideox",
                          Task.TEXT_TO_VIDEO, 9, 16, _SEQ),
    "cogvideox-i2v": Tiny(lambda: _cogvideox("CogVideoXImageToVideoPipeline", image=True),
                          "cogvideox", Task.IMAGE_TO_VIDEO, 9, 16, _SEQ),
    "cogvideox-v2v": Tiny(lambda: _cogvideox("CogVideoXVideoToVideoPipeline"), "cogvideox",
                          Task.EDIT, 9, 16, _SEQ),
    "ltx-t2v": Tiny(lambda: _ltx("LTXPipeline"), "ltx-video", Task.TEXT_TO_VIDEO, 9, 32, _SEQ),
    "ltx-i2v": Tiny(lambda: _ltx("LTXImageToVideoPipeline"), "ltx-video", Task.IMAGE_TO_VIDEO,
                    9, 32, _SEQ),
    "wan-t2v": Tiny(lambda: _wan("WanPipeline"), "wan", Task.TEXT_TO_VIDEO, 5, 16, _SEQ),
    "wan-i2v": Tiny(lambda: _wan("WanImageToVideoPipeline"), "wan", Task.IMAGE_TO_VIDEO, 5, 16,
                    _SEQ),
    "wan-v2v": Tiny(lambda: _wan("WanVideoToVideoPipeline"), "wan", Task.EDIT, 5, 16, _SEQ),
    "hunyuan-video": Tiny(_hunyuan_video, "hunyuan-video", Task.TEXT_TO_VIDEO, 5, 16,
                          {**_SEQ, "prompt_template": {"template": "{}", "crop_start": 0}}),
    "mochi": Tiny(_mochi, "mochi", Task.TEXT_TO_VIDEO, 7, 16, _SEQ),
    "latte": Tiny(_latte, "latte", Task.TEXT_TO_VIDEO, 16, 16, {"clean_caption": False}),
    "animatediff-t2v": Tiny(lambda: _animatediff("AnimateDiffPipeline"), "animatediff",
                            Task.TEXT_TO_VIDEO, 2, 16),
    "animatediff-v2v": Tiny(lambda: _animatediff("AnimateDiffVideoToVideoPipeline"),
                            "animatediff", Task.EDIT, 2, 16),
    "modelscope-t2v": Tiny(lambda: _modelscope("TextToVideoSDPipeline"), "modelscope-t2v",
                           Task.TEXT_TO_VIDEO, 2, 16),
    "modelscope-v2v": Tiny(lambda: _modelscope("VideoToVideoSDPipeline"), "modelscope-t2v",
                           Task.EDIT, 2, 16),
    "i2vgen-xl": Tiny(_i2vgen_xl, "i2vgen-xl", Task.IMAGE_TO_VIDEO, 2, 16),
    "svd": Tiny(_svd, "svd", Task.IMAGE_TO_VIDEO, 2, 16),
}
