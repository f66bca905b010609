"""An ensemble's model file as training writes it and a resume reads it.

Members train one after another, and the file is rewritten after every epoch of
the member in training: the members before it as they finished, this one as it
stands, none of those after it (layout: :mod:`genrecnn.run.model_io`). So a run
stopped at any point keeps every finished member, and a resume trains only what
is left.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from genrecnn.run.averaging import WeightAverage
from genrecnn.run.checkpoint import (TRAINING_ARRAYS, TRAINING_STATE, Checkpoint,
                                     restore_training)
from genrecnn.run.model_io import ENSEMBLE_VERSION, load_members, model_header, write_model_file
from genrecnn.run.selection import Selection
from genrecnn.run.session import Resumed
from genrecnn.run.settings import TrainSettings


@dataclass
class MemberState:
    """One network of an ensemble as its model file keeps it."""

    seed: int
    meta: dict          # its training state: epoch, history, steps, optimiser, selection
    params: dict        # its weights as stored (the selected epoch's, where one was chosen)
    arrays: dict        # its own stored arrays (optimiser state, the current weights)

    @classmethod
    def of(cls, network, meta: dict, extra: dict) -> "MemberState":
        """The state of a network just read from a model file (before a resume loads its
        current weights into it)."""
        return cls(network.seed, {k: meta[k] for k in TRAINING_STATE if k in meta},
                   network.host_params(),
                   {k: v for k, v in extra.items() if k.startswith(TRAINING_ARRAYS)})


def write_ensemble(path, network, meta: dict, shared: dict, members: list[MemberState]) -> None:
    """Write ``members`` (``network`` gives the architecture they share) as one model file;
    ``meta`` and the ``shared`` arrays are the ensemble's, the first member's seed is its
    seed."""
    header = dict(model_header(network, meta), version=ENSEMBLE_VERSION, seed=members[0].seed,
                  ensemble=len(members),
                  members=[{"seed": m.seed, "meta": m.meta} for m in members])
    params = {f"m{i}/{k}": v for i, m in enumerate(members) for k, v in m.params.items()}
    extra = dict(shared, **{f"m{i}/{k}": v for i, m in enumerate(members)
                            for k, v in m.arrays.items()})
    write_model_file(path, header, params, extra)


@dataclass
class EnsembleCheckpoint(Checkpoint):
    """The checkpoint of one member in training: each save writes the whole ensemble, the
    members ``done`` before it and this one as it stands (``current``)."""

    settings: TrainSettings | None = None           # the ensemble's (the run's own seed)
    done: list[MemberState] = field(default_factory=list)
    current: MemberState | None = None

    def save(self, network, optimizer, settings, epoch, history,
             selection: Selection | None = None, average=None, current: dict | None = None
             ) -> None:
        if self.path is None:
            return
        meta, arrays, params = Checkpoint(self.path).state(network, optimizer, settings, epoch,
                                                           history, selection, average, current)
        meta.pop("settings")            # a member's differ from the ensemble's in the seed only
        self.current = MemberState(network.seed, meta,
                                   network.host_params() if params is None else params, arrays)
        write_ensemble(self.path, network, dict(self.meta, settings=self.settings.as_dict()),
                       self.extra_arrays, [*self.done, self.current])


@dataclass
class SavedMember:
    """A network a resumed run goes on from, and its state as the file keeps it (written
    back unchanged where the network trains no further)."""

    network: object
    resumed: Resumed
    state: MemberState


def read_saved_members(path) -> tuple[dict, dict, list[SavedMember]]:
    """(meta, extra arrays, every network as a :class:`SavedMember`) of the model file a
    resume goes on from: one network, or an ensemble's (the meta and arrays are then its
    first member's, which carry the ensemble's settings)."""
    members, first = [], None
    for network, meta, extra in load_members(path):
        state = MemberState.of(network, meta, extra)
        optimizer, selection = restore_training(path, network, meta, extra)
        finished = any(k.startswith("resume/") for k in extra)
        resumed = Resumed(optimizer, int(meta["epoch"]), list(meta.get("history", [])),
                          selection, WeightAverage.from_saved(path, meta, extra),
                          state.params if finished else None)
        members.append(SavedMember(network, resumed, state))
        first = first or (meta, extra)
    return (*first, members)
