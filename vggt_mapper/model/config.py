"""
Architecture configuration of VGGT as data: one frozen dataclass per part, two variants.

Every architectural number is a field, so both the official VGGT-1B (``VGGTConfig.vggt_1b()``,
the defaults) and the reference's tiny test configuration (``VGGTConfig.tiny()``) are built by the
same factory. Field names follow the reference constructors' keyword names where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    'AggregatorConfig',
    'CameraHeadConfig',
    'DPTHeadConfig',
    'DinoConfig',
    'TrackHeadConfig',
    'VGGTConfig',
]


@dataclass(frozen=True)
class DinoConfig:
    """DINOv2 ViT with registers used as the aggregator's patch embedding (ViT-L/14 + 4 reg)."""

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    init_values: float = 1.0
    interpolate_antialias: bool = True
    interpolate_offset: float = 0.0
    norm_eps: float = 1e-6


@dataclass(frozen=True)
class AggregatorConfig:
    """Alternating frame/global attention over per-frame DINO patch tokens."""

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    aa_order: tuple[str, ...] = ('frame', 'global')
    aa_block_size: int = 1
    qk_norm: bool = True
    rope_freq: float = 100.0
    init_values: float = 0.01
    norm_eps: float = 1e-5
    patch_embed: DinoConfig = field(default_factory=DinoConfig)


@dataclass(frozen=True)
class CameraHeadConfig:
    """Iterative pose refinement head (pose encoding ``absT_quaR_FoV``, 9 numbers)."""

    dim_in: int = 2048
    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 0.01
    num_iterations: int = 4
    trans_act: str = 'linear'
    quat_act: str = 'linear'
    fl_act: str = 'relu'


@dataclass(frozen=True)
class DPTHeadConfig:
    """Dense prediction (DPT) head over four aggregator layers."""

    dim_in: int = 2048
    patch_size: int = 14
    output_dim: int = 4
    activation: str = 'inv_log'
    conf_activation: str = 'expp1'
    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)
    pos_embed: bool = True
    feature_only: bool = False
    down_ratio: int = 1


@dataclass(frozen=True)
class TrackHeadConfig:
    """Point tracking head: a feature-only DPT extractor plus an iterative tracker."""

    dim_in: int = 2048
    patch_size: int = 14
    features: int = 128
    iters: int = 4
    predict_conf: bool = True
    stride: int = 2
    corr_levels: int = 7
    corr_radius: int = 4
    hidden_size: int = 384
    latent_dim: int = 128
    tracker_depth: int = 6
    num_heads: int = 8
    num_virtual_tracks: int = 64
    mlp_ratio: float = 4.0
    max_scale: int = 518
    extractor_out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    extractor_layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)


@dataclass(frozen=True)
class VGGTConfig:
    """
    The whole model: aggregator plus optional heads.

    The default is VGGT-1B. ``enable_*`` decide which heads exist (and so which state-dict keys);
    which existing heads *run* is chosen per call.
    """

    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    camera: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    depth: DPTHeadConfig = field(default_factory=lambda: DPTHeadConfig(
        output_dim=2, activation='exp', conf_activation='expp1'))
    point: DPTHeadConfig = field(default_factory=lambda: DPTHeadConfig(
        output_dim=4, activation='inv_log', conf_activation='expp1'))
    track: TrackHeadConfig = field(default_factory=TrackHeadConfig)
    enable_camera: bool = True
    enable_depth: bool = True
    enable_point: bool = True
    enable_track: bool = True
    name: str = 'vggt-1b'

    @classmethod
    def vggt_1b(cls) -> VGGTConfig:
        """Return the official VGGT-1B architecture (1,256,537,516 parameters)."""
        return cls()

    @classmethod
    def tiny(cls) -> VGGTConfig:
        """
        Return the reference's tiny test architecture (625,324 parameters, 605 keys).

        Same module classes and key names as VGGT-1B; its geometry is meaningless unless it is
        loaded with weights trained for it (there are none): use it for tests and smoke runs.
        """
        dino = DinoConfig(img_size=70, embed_dim=32, depth=2, num_heads=2)
        aggregator = AggregatorConfig(img_size=70, embed_dim=32, depth=6, num_heads=2,
                                      patch_embed=dino)
        dpt = DPTHeadConfig(dim_in=64, features=16, out_channels=(8, 16, 32, 32),
                            intermediate_layer_idx=(1, 3, 4, 5))
        return cls(
            aggregator=aggregator,
            camera=CameraHeadConfig(dim_in=64, trunk_depth=2, num_heads=4),
            depth=replace(dpt, output_dim=2, activation='exp'),
            point=replace(dpt, output_dim=4, activation='inv_log'),
            track=TrackHeadConfig(dim_in=64, features=16, iters=3, corr_levels=3, corr_radius=2,
                                  hidden_size=32, latent_dim=16, tracker_depth=2,
                                  extractor_out_channels=(8, 16, 32, 32),
                                  extractor_layer_idx=(1, 3, 4, 5)),
            name='tiny',
        )
