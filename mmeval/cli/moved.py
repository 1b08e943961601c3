"""Flags that moved: each old spelling stays known to the parser, hidden from ``--help``, and using it is an error
(exit 2) that names what replaces it, instead of argparse's bare "unrecognized arguments".

The model families' options were flags of ``mmeval run`` (``--base-url``, ``--no-api-cache`` ...) until they moved
under ``--model-arg``/``-M``, one namespace per family. The old spellings are kept here for at least one release
after the move; a later move adds its lines here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

#: old flag -> (what replaces it, with ``{}`` where the flag's value goes, the value's placeholder when none is given)
RUN_FLAGS: dict[str, tuple[str, str]] = {
    # openai: (and the other HTTP families)
    "--base-url": ("-M base_url={}", "URL"),
    "--api-key-env": ("-M api_key_env={}", "NAME"),
    "--max-tokens": ("-M max_tokens={}", "N"),
    "--image-detail": ("-M image_detail={}", "low|high|auto"),
    "--max-image-side": ("-M max_image_side={}", "PIXELS"),
    "--rpm": ("-M rpm={}", "N"),
    "--tpm": ("-M tpm={}", "N"),
    "--max-retries": ("-M max_retries={}", "N"),
    "--retry-base-delay": ("-M retry_base_delay={}", "SECONDS"),
    "--request-timeout": ("-M request_timeout={}", "SECONDS"),
    "--api-cache": ("-M cache={}", "PATH"),
    "--no-api-cache": ("-M no_cache=true", ""),
    # hf: and llava:
    "--likelihood-target": ("-M likelihood_target={}", "letters|options"),
    "--max-new-tokens": ("-M max_new_tokens={}", "N"),
    "--prefix-reuse": ("-M prefix_reuse=true", ""),
    "--no-prefix-reuse": ("-M prefix_reuse=false", ""),
    "--batch-invariant": ("-M batch_invariant=true", ""),
    "--no-batch-invariant": ("-M batch_invariant=false", ""),
    "--dtype": ("-M dtype={}", "auto|bf16|fp16|fp32"),
    "--quantize": ("-M quantize={}", "4bit|8bit"),
    "--hf-preset": ("-M preset={}", "NAME"),
    "--trust-remote-code": ("-M trust_remote_code=true", ""),
    # expert (its detector's options)
    "--expert-size": ("-M size={}", "PIXELS"),
    "--expert-patch": ("-M patch={}", "PIXELS"),
    "--expert-window": ("-M window={}", "FRACTION"),
    "--expert-step": ("-M step={}", "PIXELS"),
    "--expert-threshold-scale": ("-M threshold_scale={}", "FACTOR"),
    "--expert-self-scale": ("-M self_scale={}", "FACTOR"),
    "--expert-temperature": ("-M temperature={}", "T"),
    "--expert-cache": ("-M cache={}", "N"),
}


class _Moved(argparse.Action):
    """A flag that no longer exists: parsing it stops with the flag that replaces it."""

    def __init__(self, option_strings: Sequence[str], dest: str, replacement: tuple[str, str],
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs="?", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
        self.replacement = replacement

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        template, placeholder = self.replacement
        new = template.format(values if isinstance(values, str) else placeholder)
        parser.error(f"{option_string} has moved: use {new} (a model option; in a --config file it goes under "
                     "model_args); 'mmeval models show FAMILY' lists a family's options")

def add_moved(parser: argparse.ArgumentParser, moved: dict[str, tuple[str, str]]) -> None:
    """Teach ``parser`` the old spellings in ``moved``, each an error naming its replacement."""
    for flag, replacement in moved.items():
        parser.add_argument(flag, action=_Moved, replacement=replacement)
