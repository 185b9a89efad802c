"""The ``lab`` section: how the simulated cluster behaves (LabOptions) and the faults it starts with."""

from __future__ import annotations

from pydantic import Field

from .. import lab_options
from ..fault_kinds import FaultKind
from ..sizes import parse_size
from .base import StrictModel
from .fields import ExtensionName, KernelArg, PositiveSize, TalosVersion, Transport


class Fault(StrictModel):
    """A fault the lab injects when it starts (same kinds as ``runbook lab fault add``)."""

    kind: FaultKind
    node: str | None = None
    peer: str | None = None
    count: int | None = Field(default=None, ge=1)


class LabOptions(StrictModel):
    """How the simulated cluster behaves; ignored against a real cluster."""

    nodes: int | None = Field(default=None, ge=1)
    time_scale: float = Field(default=lab_options.TIME_SCALE, gt=0, le=10000)
    seed: int = lab_options.SEED
    disk_size: PositiveSize = lab_options.DISK_SIZE
    disk_transport: Transport = lab_options.DISK_TRANSPORT
    initial_talos_version: TalosVersion = lab_options.INITIAL_TALOS_VERSION
    faults: list[Fault] = Field(default_factory=list)
    #: ask for every approval and apply every rule a real cluster gets (default: relaxed for rehearsal)
    enforce_safety: bool = lab_options.ENFORCE_SAFETY
    #: MiB/s each volume in use changes while a replica is away: what a returning replica must resync
    workload_write_mib_s: float = Field(default=lab_options.WORKLOAD_WRITE_MIB_S, ge=0, le=10000)
    #: worker nodes the lab adds beyond ``nodes`` (lab-w-1, ...): unlisted compute-only nodes the runbooks leave alone
    extra_workers: int = Field(default=lab_options.EXTRA_WORKERS, ge=0, le=8)
    #: official extensions the lab nodes were installed with (an Image Factory installer), e.g. siderolabs/iscsi-tools
    initial_extensions: list[ExtensionName] = Field(default_factory=list)
    #: extra kernel arguments of that installer's schematic, e.g. console=ttyS0
    initial_kernel_args: list[KernelArg] = Field(default_factory=list)

    @property
    def disk_size_bytes(self) -> int:
        return parse_size(self.disk_size)
