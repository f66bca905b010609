"""The same network in PyTorch: a genrecnn network's layers, one PyTorch module each,
its initial weights copied in, for benchmarks that compare like with like."""
from __future__ import annotations


def twin(net, device: str = "cuda"):
    """A ``torch.nn.Sequential`` computing what ``net`` (a genrecnn Network) computes,
    without the softmax (PyTorch's cross-entropy takes logits)."""
    import torch
    from torch import nn

    class GlobalPool(nn.Module):
        """Mean, max and L2 norm over time (2-D maps: over all positions, or over time
        band by band), concatenated as genrecnn's global_pool lays them out."""

        def __init__(self, over: str):
            super().__init__()
            self.over = over

        def forward(self, h):
            if h.dim() == 4:
                h = h.flatten(1, 2) if self.over == "time" else h.flatten(2)
            return torch.cat([h.mean(2), h.amax(2), torch.linalg.vector_norm(h, dim=2)], 1)

    class Unsqueeze(nn.Module):
        def forward(self, x):
            return x[:, None]

    params = net.host_params()
    t = lambda a: torch.from_numpy(a.copy())    # noqa: E731
    mods = [Unsqueeze()] if len(net.layers[0].input_shape) == 3 else []
    for layer in net.layers[:-1]:
        kind, p = layer.type, lambda k: params[f"{layer.name}/{k}"]   # noqa: E731
        if kind == "conv":
            m = nn.Conv1d(layer.input_shape[0], layer.filters, layer.width)
            m.weight.data, m.bias.data = t(p("w")), t(p("b"))
        elif kind == "conv2d":
            m = nn.Conv2d(layer.input_shape[0], layer.filters, layer.kernel, layer.stride,
                          layer.padding)
            m.weight.data, m.bias.data = t(p("w")), t(p("b"))
        elif kind == "fc":
            m = nn.Linear(layer.input_shape[0], layer.units)
            m.weight.data, m.bias.data = t(p("w").T), t(p("b"))
        elif kind == "pool":
            m = nn.MaxPool1d(layer.size, layer.stride)
        elif kind == "pool2d":
            m = nn.MaxPool2d(layer.size, layer.stride)
        elif kind == "gpool":
            m = GlobalPool(getattr(layer, "over", "all"))
        elif kind == "batchnorm":
            dims = len(layer.input_shape)
            m = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}[dims](
                layer.input_shape[0], eps=layer.eps, momentum=layer.momentum)
            m.weight.data, m.bias.data = t(p("gamma")), t(p("beta"))
        elif kind == "dropout":
            m = nn.Dropout(layer.rate)
        elif kind == "act":
            m = {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(layer.slope),
                 "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[layer.fn]
        else:
            raise SystemExit(f"error: layer {layer.name} ({kind}) has no PyTorch twin here")
        mods.append(m)
    return nn.Sequential(*mods).to(device)


def torch_optimizer(model, settings):
    """The PyTorch optimiser of a genrecnn TrainSettings (Adam, AdamW or SGD)."""
    import torch
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    cls = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def step_runner(step, opt, graph: bool, warmup: int = 3, side=None):
    """What replays one training step (``step()``: forward, loss, backward, update):
    eager, zeroing the gradients first; or the step captured as one CUDA graph after
    ``warmup`` steps on a side stream (``side``, made here unless given: DDP must be
    built on the stream it is warmed up on)."""
    import torch

    if not graph:
        def run():
            opt.zero_grad(set_to_none=True)
            step()
        for _ in range(warmup):
            run()
        return run
    side = side or torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            opt.zero_grad(set_to_none=False)
            step()
    torch.cuda.current_stream().wait_stream(side)
    cuda_graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=False)
    with torch.cuda.graph(cuda_graph):
        step()
    return cuda_graph.replay


def random_data_step(model, shape, classes: int, items: int, batch: int, graph: bool,
                     seed: int = 0, autocast=None):
    """One Adam training step of ``model`` on ``batch`` rows (chosen by writing ``idx``)
    of ``items`` random examples resident on the GPU: (step, optimiser, idx). With
    ``graph`` the optimiser is capturable, for :func:`step_runner`'s CUDA graph; with
    ``autocast`` (a torch dtype, e.g. ``torch.bfloat16``) forward and loss run under
    ``torch.autocast`` (its cache off, as CUDA graph capture needs)."""
    import contextlib

    import torch
    import torch.nn.functional as F

    g = torch.Generator(device="cuda").manual_seed(seed)
    data = torch.rand((items, *shape), device="cuda", generator=g)
    labels = torch.randint(0, classes, (items,), device="cuda", generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, capturable=graph)
    idx = torch.arange(batch, device="cuda")

    def mixed():
        if autocast is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=autocast, cache_enabled=False)

    def step():
        with mixed():
            loss = F.cross_entropy(model(data[idx]), labels[idx])
        loss.backward()
        opt.step()

    return step, opt, idx
