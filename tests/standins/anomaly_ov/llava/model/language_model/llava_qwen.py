"""Stand-in for Anomaly-OV's llava/model/language_model/llava_qwen.py (tests only).

The model's interface without a model: ``generate`` returns new token ids only and ``forward`` logits at
the last position, both deterministic, and both run the attached expert on every image's crops (in
order), which is where the real model computes (and drops) the expert's score and maps.
"""

import torch
from standin_tools import record, unit

from llava.constants import IMAGE_TOKEN_INDEX

VOCAB = 512


class StandinTokenizer:
    """Characters as tokens (id = code point + 10, up to the vocabulary)."""

    class _Encoded:
        def __init__(self, ids):
            self.input_ids = ids

    def encode(self, text, add_special_tokens=True):
        return [min(ord(c) + 10, VOCAB - 1) for c in text]

    def __call__(self, text):
        return self._Encoded(self.encode(text))

    def batch_decode(self, sequences, skip_special_tokens=False):
        return ["".join(chr(int(i) - 10) for i in row if int(i) >= 10) for row in sequences.tolist()]


class _Weights:
    def __init__(self, name):
        self.weight = name


class _Inner:
    def __init__(self):
        self.embed_tokens = _Weights("embed_tokens")


class _Output:
    def __init__(self, logits):
        self.logits = logits


class LlavaQwenConfig:
    model_type = "llava_qwen"


class LlavaQwenForCausalLM(torch.nn.Module):
    def __init__(self, config):
        self.config = config
        self.device = "cuda:0"
        self.model = _Inner()
        self.lm_head = _Weights("lm_head")
        self.anomaly_encoder = None

    def set_anomaly_encoder(self, anomaly_encoder):
        self.anomaly_encoder = anomaly_encoder
        record("set_anomaly_encoder", weights=anomaly_encoder.weights, frozen=anomaly_encoder.frozen)

    def get_anomaly_tokens(self, ov_image_features, sig_multi_level_features, split_sizes):
        return self.anomaly_encoder(ov_image_features, sig_multi_level_features, split_sizes)

    def _run_expert(self, inputs, images, image_sizes):
        if self.anomaly_encoder is None:
            raise RuntimeError("set_anomaly_encoder was not called")
        ids = [int(i) for i in inputs.reshape(-1).tolist()]
        if ids.count(IMAGE_TOKEN_INDEX) != len(images) or len(image_sizes) != len(images):
            raise IndexError(f"{ids.count(IMAGE_TOKEN_INDEX)} image tokens, {len(images)} images, "
                             f"{len(image_sizes)} sizes")
        crops = [image.meta["source"] for image in images for _ in range(image.shape[0])]
        self.get_anomaly_tokens(crops, None, [image.shape[0] for image in images])
        text = "".join("<image>" if i == IMAGE_TOKEN_INDEX else chr(i - 10) for i in ids if i >= 10 or i < 0)
        letters = [line[0] for line in text.split("\n") if len(line) > 2 and line[1] == "." and line[0].isupper()]
        return text, letters

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, images=None,
                image_sizes=None, return_dict=None, modalities=["image"], dpo_forward=False,  # noqa: B006
                cache_position=None):
        text, letters = self._run_expert(input_ids, images, image_sizes)
        record("forward", image_sizes=[list(s) for s in image_sizes], modalities=modalities,
               tied=self.lm_head.weight == self.model.embed_tokens.weight)
        logits = [0.0] * VOCAB
        for rank, letter in enumerate(sorted(letters, key=lambda x: unit("logit", text, x))):
            logits[ord(letter) + 10] = 1.0 + rank
        return _Output(torch.Tensor(logits, (1, 1, VOCAB)))

    @torch.no_grad()
    def generate(self, inputs=None, images=None, image_sizes=None, modalities=["image"], **kwargs):  # noqa: B006
        text, letters = self._run_expert(inputs, images, image_sizes)
        record("generate", prompt=text, image_sizes=[list(s) for s in image_sizes], modalities=modalities,
               kwargs=kwargs, tied=self.lm_head.weight == self.model.embed_tokens.weight)
        reply = min(letters, key=lambda x: unit("reply", text, x)) if letters else "Yes"
        ids = [ord(c) + 10 for c in reply]
        return torch.Tensor(ids, (1, len(ids)), dtype=torch.long)
