"""What ``--backend auto`` measured and decided: saved with the model, printed for people."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from genrecnn.engine.autoplace.solve import INF


@dataclass
class LayerChoice:
    """One layer's measured times (seconds, medians) and the chosen backend."""

    name: str
    kind: str
    shape: list[int]
    chosen: str
    total_s: dict[str, float]
    phases_s: dict[str, dict[str, float]]
    pruned: list[str] = field(default_factory=list)    # timed in part: a lower bound


@dataclass
class PlanReport:
    """What ``--backend auto`` measured and decided; ``as_dict()`` fits model meta."""

    key: str
    machine: str
    dtype: str
    batch_size: int
    optimizer: str | None
    backends: list[str]
    plan: list[str]
    predicted_s: float
    layers: list[LayerChoice]
    edges_s: list[dict[str, float]]        # per boundary, "a>b": both directions
    input_s: dict[str, float]
    output_s: dict[str, float]
    greedy_plan: list[str]
    greedy_s: float
    single_s: dict[str, float]             # each whole-network single placement, predicted
    measured_in_s: float
    created: str
    cached: bool = False
    notes: list[str] = field(default_factory=list)
    validation_s: dict[str, float] = field(default_factory=dict)   # real step medians

    def as_dict(self) -> dict:
        d = asdict(self)
        d["single_s"] = {k: (None if v == INF else v) for k, v in self.single_s.items()}
        d["greedy_s"] = None if self.greedy_s == INF else self.greedy_s
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PlanReport":
        d = dict(d)
        d["layers"] = [LayerChoice(**x) for x in d["layers"]]
        d["single_s"] = {k: (INF if v is None else v) for k, v in d["single_s"].items()}
        d["greedy_s"] = INF if d["greedy_s"] is None else d["greedy_s"]
        return cls(**d)

    def format(self) -> str:
        """A table of the measured times and the plan, for people."""
        ms = lambda s: "-" if s is None or s == INF else f"{s * 1e3:.2f}"   # noqa: E731
        w = max(9, *(len(b) + 2 for b in self.backends))
        how = (f"cached plan measured {self.created}" if self.cached
               else f"measured in {self.measured_in_s:.1f} s")
        lines = [f"auto placement: batch {self.batch_size}, {self.dtype}, "
                 f"{self.optimizer or 'no'} update, {how}; median ms per training step "
                 f"(forward + backward + update)",
                 f"  {'layer':<9} {'kind':<8}" + "".join(f"{b:>{w}}" for b in self.backends)
                 + "   chosen"]
        for lc in self.layers:
            cell = lambda b: ((">" if b in lc.pruned else "")    # noqa: E731
                              + ms(lc.total_s.get(b)))
            lines.append(f"  {lc.name:<9} {lc.kind:<8}"
                         + "".join(f"{cell(b):>{w}}" for b in self.backends)
                         + f"   {lc.chosen}")
        moves = [f"{self.layers[i].name}->{self.layers[i + 1].name} "
                 f"{self.plan[i]}>{self.plan[i + 1]} "
                 f"{ms(self.edges_s[i].get(f'{self.plan[i]}>{self.plan[i + 1]}'))} ms"
                 for i in range(len(self.plan) - 1) if self.plan[i] != self.plan[i + 1]]
        lines.append(f"  input host>{self.plan[0]} {ms(self.input_s.get(self.plan[0]))} ms, "
                     f"output {self.plan[-1]}>host {ms(self.output_s.get(self.plan[-1]))} ms; "
                     f"moves: {'; '.join(moves) or 'none'}")
        bounded = {b for lc in self.layers for b in lc.pruned}
        singles = ", ".join(f"{b} only {'>' if b in bounded else ''}{ms(s)}"
                            for b, s in self.single_s.items())
        lines.append(f"  predicted step: auto {ms(self.predicted_s)} ms; greedy per layer "
                     f"{ms(self.greedy_s)} ms; {singles} ms")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
