"""Stand-in for Anomaly-OV's llava/model/anomaly_expert.py (tests only): the AnomalyOV expert's interface.

Deterministic outputs: per crop a 27x27 map with one peak, per image a score in (0, 1), both fixed by the
image's file name (carried by the stand-in image tensors).
"""

import os

import torch
from standin_tools import peak_map, record, unit


class AnomalyOV(torch.nn.Module):
    def __init__(self, embedding_dim=512, class_dim=512, kernal_size=3, attention_dim=512, num_pooling_tokens=2):
        self.weights = None
        self.frozen = False

    def freeze_layers(self):
        self.frozen = True

    def load_zero_shot_weights(self, path="./pretrained_expert_7b.pth"):
        torch.load(path)
        self.weights = os.path.basename(path)
        record("load_zero_shot_weights", path=path)

    def get_anomaly_map(self, sig_multi_level_features, ov_base_features):
        maps, significances = [], []
        for crop, source in enumerate(ov_base_features):
            key = (os.path.basename(os.path.dirname(source)), os.path.basename(source), crop)
            maps.extend(peak_map(27, 27, *key))
            significances.append(unit("significance", *key))
        n = len(ov_base_features)
        return torch.Tensor(maps, (n, 1, 27, 27)), torch.Tensor(significances, (n,))

    def forward(self, ov_image_features, sig_multi_level_features, split_sizes):
        """``ov_image_features``: one file name per crop here (the real one takes the crops' features)."""
        self.get_anomaly_map(sig_multi_level_features, ov_image_features)
        scores, start = [], 0
        for size in split_sizes:
            source = ov_image_features[start]
            scores.append(0.05 + 0.9 * unit("score", os.path.basename(os.path.dirname(source)),
                                            os.path.basename(source)))
            start += size
        images = len(split_sizes)
        return (torch.Tensor(None, (sum(split_sizes), 4, 1152)), torch.Tensor(None, (images, 1, 1152)),
                torch.Tensor(scores, (images, 1)))
