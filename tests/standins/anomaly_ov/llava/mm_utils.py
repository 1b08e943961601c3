"""Stand-in for Anomaly-OV's llava/mm_utils.py (tests only): shapes of the anyres crops, a character tokenizer."""

import math

import torch

from llava.constants import IMAGE_TOKEN_INDEX


def process_images(images, image_processor, model_cfg):
    """One (1 + crops, 3, 384, 384) tensor per image (crop 0: the whole image), shapes only."""
    out = []
    for image in images:
        width, height = image.size
        crops = min(36, math.ceil(width / 384) * math.ceil(height / 384))
        crops = crops if crops > 1 else 0
        out.append(torch.Tensor(None, (1 + crops, 3, 384, 384), meta={"source": image.filename,
                                                                        "size": list(image.size)}))
    return out


def tokenizer_image_token(prompt, tokenizer, image_token_index=IMAGE_TOKEN_INDEX, return_tensors=None):
    ids = []
    for i, chunk in enumerate(prompt.split("<image>")):
        if i:
            ids.append(image_token_index)
        ids.extend(tokenizer(chunk).input_ids)
    if return_tensors == "pt":
        return torch.Tensor(ids, (len(ids),), dtype=torch.long)
    return ids
