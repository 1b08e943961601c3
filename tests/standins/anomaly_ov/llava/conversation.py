"""Stand-in for Anomaly-OV's llava/conversation.py (tests only): the ChatML template qwen_1_5."""

import dataclasses


@dataclasses.dataclass
class Conversation:
    system: str
    roles: tuple
    messages: list
    sep: str = "<|im_end|>"

    def append_message(self, role, message):
        self.messages.append([role, message])

    def get_prompt(self):
        out = self.system + self.sep + "\n"
        for role, message in self.messages:
            out += role + "\n" + (message + self.sep + "\n" if message else "")
        return out


conv_qwen = Conversation(system="<|im_start|>system\nYou are a helpful assistant.",
                         roles=("<|im_start|>user", "<|im_start|>assistant"), messages=[])
conv_templates = {"qwen_1_5": conv_qwen}
