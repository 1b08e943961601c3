"""torch.nn of the stand-in torch (tests only): a Module with forward hooks, and nothing else."""


class _Handle:
    def __init__(self, hooks, entry):
        self.hooks, self.entry = hooks, entry

    def remove(self):
        if self.entry in self.hooks:
            self.hooks.remove(self.entry)


class _Keys:
    missing_keys, unexpected_keys = [], []


class Module:
    training = True

    def _hooks(self):
        if "_forward_hooks" not in self.__dict__:
            self.__dict__["_forward_hooks"] = []
        return self.__dict__["_forward_hooks"]

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook, with_kwargs in list(self._hooks()):
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False, always_call=False):
        entry = (hook, with_kwargs)
        hooks = self._hooks()
        hooks.insert(0, entry) if prepend else hooks.append(entry)
        return _Handle(hooks, entry)

    def eval(self):
        return self.train(False)

    def train(self, mode=True):
        self.training = mode
        return self

    def half(self):
        return self

    def float(self):
        return self

    def cuda(self, device=None):
        return self

    def cpu(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def requires_grad_(self, requires_grad=True):
        return self

    def load_state_dict(self, state_dict, strict=True):
        return _Keys()

    def parameters(self):
        return iter(())
