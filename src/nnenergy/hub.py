"""keras-hub backbones in the project's own small configurations: the `external_hub` held-out set.

Built with random weights from their constructors (no presets, nothing downloaded), named `hub_<Name>`
and sized by one number like every other architecture: the image side for vision backbones, the
sequence length for text backbones. Text backbones read token ids, segment ids and a padding mask;
here a `TokenFeed` layer makes them from one float input in [0, 1) (what the sweep's random batch
holds), so they are measured and described like any single-input model. Needs keras-hub
(`pip install 'nnenergy[hub]'`). Never trained on: `conf/sweep/external_hub.yaml` measures them.
The set also holds plain-Keras recurrent text classifiers (`RECURRENT`: Embedding -> LSTM/GRU -> Dense),
the other kind of sequence model people deploy, sized by their sequence length like the text backbones.
"""

from __future__ import annotations

PREFIX = "hub_"
TEXT_VOCABULARY = 30522  # BERT's; the gather's cost does not depend on it, the embedding's size does


def _vit(hidden: int, heads: int, layers: int, mlp: int, patch: int = 16):
    def build(size: int):
        import keras_hub

        if size % patch:
            raise ValueError(f"ViT needs a size divisible by its patch ({patch}), got {size}")
        return keras_hub.models.ViTBackbone(image_shape=(size, size, 3), patch_size=patch, num_layers=layers,
                                            num_heads=heads, hidden_dim=hidden, mlp_dim=mlp)
    return build


def _mit_b0(size: int):
    import keras_hub

    return keras_hub.models.MiTBackbone(
        layerwise_depths=[2, 2, 2, 2], num_layers=4, layerwise_num_heads=[1, 2, 5, 8], layerwise_sr_ratios=[8, 4, 2, 1],
        max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3], layerwise_strides=[4, 2, 2, 2],
        hidden_dims=[32, 64, 160, 256], image_shape=(size, size, 3))


def _resnet50(size: int):
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
        image_shape=(size, size, 3))


def _efficientnet_b0(size: int):
    import keras_hub

    return keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 7, stackwise_depth_coefficients=[1.0] * 7,
        stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3], stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
        stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
        stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
        stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6], stackwise_squeeze_and_excite_ratios=[0.25] * 7,
        stackwise_strides=[1, 2, 2, 2, 1, 2, 1], stackwise_block_types=["v1"] * 7, input_shape=(size, size, 3))


def _text(kind: str, layers: int, hidden: int, heads: int, intermediate: int):
    def build(seq_len: int):
        import keras
        import keras_hub

        common = dict(vocabulary_size=TEXT_VOCABULARY, num_layers=layers, num_heads=heads, hidden_dim=hidden,
                      intermediate_dim=intermediate, max_sequence_length=max(512, seq_len))
        if kind == "bert":
            backbone, names = keras_hub.models.BertBackbone(**common), ("token_ids", "segment_ids", "padding_mask")
        else:
            backbone, names = keras_hub.models.GPT2Backbone(**common), ("token_ids", "padding_mask")
        inp = keras.Input((seq_len,), name="tokens_uniform")
        out = backbone(token_feed()(TEXT_VOCABULARY, names, name="token_feed")(inp))
        out = out["sequence_output"] if isinstance(out, dict) else out
        return keras.Model(inp, out, name=backbone.name)
    return build


def _recurrent(cell: str, units: int, layers: int = 1, bidirectional: bool = False, embed: int = 128):
    """A sentiment-style classifier: token ids -> Embedding -> `layers` LSTM/GRU -> Dense(2)."""
    def build(seq_len: int):
        import keras

        vocabulary = 20000
        inp = keras.Input((seq_len,), name="tokens_uniform")
        ids = token_feed()(vocabulary, ("token_ids",), name="token_feed")(inp)["token_ids"]
        x = keras.layers.Embedding(vocabulary, embed)(ids)
        for i in range(layers):
            rnn = getattr(keras.layers, cell)(units, return_sequences=i < layers - 1)
            x = keras.layers.Bidirectional(rnn)(x) if bidirectional else rnn(x)
        out = keras.layers.Dense(2, activation="softmax")(x)
        return keras.Model(inp, out, name=f"{cell.lower()}_text")
    return build


RECURRENT = {
    "hub_LSTM2x256": _recurrent("LSTM", 256, layers=2),
    "hub_GRU256": _recurrent("GRU", 256),
    "hub_BiLSTM128": _recurrent("LSTM", 128, bidirectional=True),
}
BACKBONES = {
    "hub_ViTTi16": _vit(192, 3, 12, 768),  # ViT-Ti/16
    "hub_DeiTS16x6": _vit(384, 6, 6, 1536),  # DeiT-S/16's width, 6 of its 12 blocks
    "hub_MiTB0": _mit_b0,  # SegFormer B0's encoder
    "hub_ResNet50": _resnet50,
    "hub_EfficientNetB0": _efficientnet_b0,
    "hub_BertMini": _text("bert", 4, 256, 4, 1024),  # BERT-mini: 4 layers, hidden 256
    "hub_BertSmall": _text("bert", 4, 512, 8, 2048),  # BERT-small
    "hub_GPT2Mini": _text("gpt2", 4, 256, 4, 1024),
    **RECURRENT,
}
TEXT = {"hub_BertMini", "hub_BertSmall", "hub_GPT2Mini", *RECURRENT}


def is_hub(name: str) -> bool:
    return name.startswith(PREFIX)


def default_size(name: str) -> int:
    """Without a size: 224 px for vision backbones, 128 tokens for text ones."""
    return 128 if name in TEXT else 224


def build(name: str, size: int):
    """The backbone `name` at `size` (image side, or sequence length for text), random weights."""
    if name not in BACKBONES:
        raise ValueError(f"unknown keras-hub backbone {name!r}: one of {', '.join(BACKBONES)}")
    if name not in RECURRENT:
        try:
            import keras_hub  # noqa: F401
        except ImportError as exc:
            raise ValueError("keras-hub backbones need keras-hub: pip install 'nnenergy[hub]'") from exc
    return BACKBONES[name](int(size))


_TOKEN_FEED = None


def token_feed():
    """The `TokenFeed` layer class (defined on first use: it imports Keras)."""
    global _TOKEN_FEED
    if _TOKEN_FEED is not None:
        return _TOKEN_FEED
    import keras

    @keras.saving.register_keras_serializable(package="nnenergy")
    class TokenFeed(keras.layers.Layer):
        """Floats in [0, 1) -> {token_ids, segment_ids, padding_mask} (int32), what a text backbone reads."""

        def __init__(self, vocabulary_size: int, names=("token_ids", "padding_mask"), **kwargs):
            super().__init__(**kwargs)
            self.vocabulary_size, self.names = int(vocabulary_size), tuple(names)

        def call(self, x):
            ids = keras.ops.cast(x * (self.vocabulary_size - 1), "int32")
            made = {"token_ids": ids, "segment_ids": keras.ops.zeros_like(ids),
                    "padding_mask": keras.ops.ones_like(ids)}
            return {k: made[k] for k in self.names}

        def get_config(self):
            return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "names": list(self.names)}

    _TOKEN_FEED = TokenFeed
    return TokenFeed
